/**
 * Background processes: commands started detached in a sandbox whose output the daemon keeps
 * (the last 1 MiB of each stream) so a client can leave and reconnect, write to their stdin,
 * signal or kill them. They live in the daemon's memory: after a daemon restart they are no
 * longer attached (the sandbox's destroy still ends them).
 */
import type { DriverProcess, ExitInfo } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';
import { newId } from './ids.js';

/** Output kept per stream, per process. */
const KEEP_BYTES = 1024 * 1024;

export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
  /** Position of this chunk in the stream (bytes before it). */
  offset: number;
}

export interface ProcessInfo {
  id: string;
  sandbox: string;
  command: string[];
  status: 'running' | 'exited';
  startedAt: string;
  /** On a pseudo-terminal. */
  tty: boolean;
  exit: ExitInfo | null;
}

type Listener = (ev: { chunk?: OutputChunk; exit?: ExitInfo }) => void;

class Bg {
  readonly chunks: OutputChunk[] = [];
  private kept = { stdout: 0, stderr: 0 };
  private total = { stdout: 0, stderr: 0 };
  readonly listeners = new Set<Listener>();
  exit: ExitInfo | null = null;
  /** Resolves once the exit is recorded (and listeners told). */
  readonly ended: Promise<void>;

  constructor(
    readonly info: Omit<ProcessInfo, 'status' | 'exit'>,
    readonly proc: DriverProcess,
  ) {
    for (const stream of ['stdout', 'stderr'] as const) {
      proc[stream].on('data', (data: Buffer) => this.push(stream, data));
    }
    proc.stdin?.on('error', () => undefined);
    this.ended = proc.wait().then((exit) => {
      this.exit = exit;
      for (const l of this.listeners) l({ exit });
    }, () => undefined);
  }

  private push(stream: 'stdout' | 'stderr', data: Buffer): void {
    const chunk = { stream, data, offset: this.total[stream] };
    this.total[stream] += data.length;
    this.kept[stream] += data.length;
    this.chunks.push(chunk);
    // Drop the oldest chunks of this stream past the limit.
    while (this.kept[stream] > KEEP_BYTES) {
      const i = this.chunks.findIndex((c) => c.stream === stream);
      const [old] = this.chunks.splice(i, 1);
      this.kept[stream] -= old?.data.length ?? 0;
    }
    for (const l of this.listeners) l({ chunk });
  }

  view(): ProcessInfo {
    return { ...this.info, status: this.exit ? 'exited' : 'running', exit: this.exit };
  }
}

export class Processes {
  private readonly bySandbox = new Map<string, Map<string, Bg>>();

  add(sandbox: string, command: string[], proc: DriverProcess, tty = false): ProcessInfo {
    const id = newId('p');
    const bg = new Bg({ id, sandbox, command, tty, startedAt: new Date().toISOString() }, proc);
    let m = this.bySandbox.get(sandbox);
    if (!m) this.bySandbox.set(sandbox, (m = new Map<string, Bg>()));
    m.set(id, bg);
    return bg.view();
  }

  list(sandbox: string): ProcessInfo[] {
    return [...(this.bySandbox.get(sandbox)?.values() ?? [])].map((b) => b.view());
  }

  private get(sandbox: string, id: string): Bg {
    const b = this.bySandbox.get(sandbox)?.get(id);
    if (!b) throw new RealmError('PROCESS_NOT_FOUND', `no process ${id} in sandbox ${sandbox}; list them with GET /v1/sandboxes/${sandbox}/processes`);
    return b;
  }

  info(sandbox: string, id: string): ProcessInfo {
    return this.get(sandbox, id).view();
  }

  /**
   * Replay the output kept so far, then follow it until the process ends. Returns an unsubscribe.
   * `onEnd` is called once with the exit (at once if it already ended).
   */
  follow(sandbox: string, id: string, onChunk: (c: OutputChunk) => void, onEnd: (exit: ExitInfo | null) => void, live = true): () => void {
    const b = this.get(sandbox, id);
    for (const c of b.chunks) onChunk(c);
    if (b.exit || !live) {
      onEnd(b.exit);
      return () => undefined;
    }
    const l: Listener = (ev) => {
      if (ev.chunk) onChunk(ev.chunk);
      if (ev.exit) {
        b.listeners.delete(l);
        onEnd(ev.exit);
      }
    };
    b.listeners.add(l);
    return () => b.listeners.delete(l);
  }

  write(sandbox: string, id: string, data: string | Buffer, close = false): void {
    const b = this.get(sandbox, id);
    if (b.exit || !b.proc.stdin) throw new RealmError('PROCESS_NOT_RUNNING', `process ${id} has ended; its stdin is closed`);
    b.proc.stdin.write(data);
    if (close) b.proc.stdin.end();
  }

  resize(sandbox: string, id: string, rows: number, cols: number): void {
    this.get(sandbox, id).proc.resize?.(rows, cols);
  }

  signal(sandbox: string, id: string, signal: NodeJS.Signals): void {
    const b = this.get(sandbox, id);
    if (b.exit) throw new RealmError('PROCESS_NOT_RUNNING', `process ${id} has ended`);
    b.proc.signal(signal);
  }

  /** Kill the process and everything it started; returns once its exit is recorded. */
  async kill(sandbox: string, id: string): Promise<void> {
    const b = this.get(sandbox, id);
    if (b.exit) return;
    await b.proc.kill();
    await b.ended;
  }

  /** Forget a sandbox's processes (it is being destroyed). */
  forget(sandbox: string): void {
    this.bySandbox.delete(sandbox);
  }
}
