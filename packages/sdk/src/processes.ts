/** Background processes in a sandbox: start, reconnect to output, stdin, signal, kill. */
import type { Client } from './client.js';
import { errorFromBody } from './errors.js';
import { readSse } from './sse.js';
import { type Interactive, attachProcess } from './interactive.js';

export interface ProcessInfo {
  id: string;
  sandbox: string;
  command: string[];
  status: 'running' | 'exited';
  startedAt: string;
  tty: boolean;
  exit: { exitCode: number | null; signal: string | null; oomKilled: boolean; cpuMs: number; memoryBytes: number } | null;
}

/** Output of a background process: what was kept, then live; `offset` is the byte position in its stream. */
export type ProcessEvent =
  { type: 'stdout' | 'stderr'; data: string; offset: number } | { type: 'exit'; exit: NonNullable<ProcessInfo['exit']> };

type Signal = 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGSTOP' | 'SIGCONT';

export class BackgroundProcess {
  constructor(
    private readonly client: Client,
    public info: ProcessInfo,
  ) {}

  get id(): string {
    return this.info.id;
  }

  private get path(): string {
    return `/v1/sandboxes/${encodeURIComponent(this.info.sandbox)}/processes/${encodeURIComponent(this.id)}`;
  }

  async refresh(): Promise<ProcessInfo> {
    this.info = await this.client.request<ProcessInfo>('GET', this.path);
    return this.info;
  }

  /**
   * Its output from the start (the last 1 MiB of each stream is kept), then as it comes, until it exits.
   * @example for await (const ev of proc.output()) if (ev.type === 'stdout') process.stdout.write(ev.data);
   */
  async *output(signal?: AbortSignal, opts: { follow?: boolean } = {}): AsyncGenerator<ProcessEvent> {
    const res = await this.client.send(
      'GET',
      `${this.path}/output${opts.follow === false ? '?follow=0' : ''}`,
      undefined,
      signal,
    );
    if (!res.body) return;
    for await (const msg of readSse(res.body)) {
      const data = JSON.parse(msg.data) as { data?: string; offset?: number } & NonNullable<ProcessInfo['exit']>;
      if (msg.event === 'stdout' || msg.event === 'stderr')
        yield { type: msg.event, data: data.data ?? '', offset: data.offset ?? 0 };
      else if (msg.event === 'exit') {
        yield { type: 'exit', exit: data };
        return;
      } else if (msg.event === 'end') return;
      else if (msg.event === 'error') throw errorFromBody(500, data);
    }
  }

  /**
   * Attach a terminal: replay, then live; `close()` detaches and leaves it running.
   * @example const t = await proc.attach(); t.onData((_, d) => process.stdout.write(d)); t.write('ls\n');
   */
  attach(): Promise<Interactive> {
    return attachProcess(this.client, this.info.sandbox, this.id);
  }

  async write(data: string, opts: { close?: boolean } = {}): Promise<void> {
    await this.client.request('POST', `${this.path}/stdin`, { data, close: opts.close ?? false });
  }

  async signal(signal: Signal = 'SIGTERM'): Promise<void> {
    await this.client.request('POST', `${this.path}/signal`, { signal });
  }

  /** Kill it and everything it started. */
  async kill(): Promise<void> {
    await this.client.request('DELETE', this.path);
  }
}

export class Processes {
  constructor(
    private readonly client: Client,
    private readonly sandboxId: string,
  ) {}

  /**
   * Start a command in the background (a string runs under sh -c).
   * @example const server = await sb.processes.start('python3 -m http.server 8000');
   */
  async start(
    command: string | string[],
    opts: { env?: Record<string, string>; cwd?: string; tty?: boolean; rows?: number; cols?: number } = {},
  ): Promise<BackgroundProcess> {
    const info = await this.client.request<ProcessInfo>('POST', `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/processes`, {
      command,
      ...opts,
    });
    return new BackgroundProcess(this.client, info);
  }

  async list(): Promise<BackgroundProcess[]> {
    const r = await this.client.request<{ processes: ProcessInfo[] }>(
      'GET',
      `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/processes`,
    );
    return r.processes.map((p) => new BackgroundProcess(this.client, p));
  }

  async get(id: string): Promise<BackgroundProcess> {
    return new BackgroundProcess(
      this.client,
      await this.client.request<ProcessInfo>(
        'GET',
        `/v1/sandboxes/${encodeURIComponent(this.sandboxId)}/processes/${encodeURIComponent(id)}`,
      ),
    );
  }
}
