/**
 * Jobs: send work to the node and get the results back. A job is addressed by its name (its
 * latest run) or a run id.
 *
 * @example
 *   const c = new Client();
 *   const job = await c.jobs.submit({ toml: readFileSync('build.toml', 'utf8') });
 *   const run = await c.jobs.wait(job.name);
 *   writeFileSync('app', await c.jobs.download(run.id, 'app'));
 */
import type { Client } from './client.js';
import { RealmError } from './errors.js';
import { readSse } from './sse.js';

export type JobRunState = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';

export interface JobAttempt {
  n: number;
  state: 'running' | 'succeeded' | 'failed' | 'lost' | 'cancelled';
  /** In a cluster: the node it was placed on (its log is kept there). */
  node: string | null;
  startedAt: string;
  endedAt: string | null;
  exitCode: number | null;
  signal: string | null;
  verdict: string | null;
  error: string | null;
  wallMs: number | null;
  cpuMs: number | null;
  memoryBytes: number | null;
  logBytes: number;
}

export interface JobArtifact {
  name: string;
  path: string;
  sha256: string;
  size: number;
  /** A file as it is, or a directory as a tar. */
  kind: 'file' | 'tar';
  /** `ok`, or what ended the attempt that made it (`timeout`, `runtime-error`, …). */
  outcome: string;
}

export interface JobRun {
  id: string;
  job: string;
  n: number;
  state: JobRunState;
  /** Queued: its place in the node's queue (1 starts next). */
  position: number | null;
  reason: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  firing: string | null;
  nextAttemptAt: string | null;
  /** When this run's logs were dropped to keep the node's job logs under their bound (each log then says so). */
  logDropped: string | null;
  inputs: { dest: string; sha256: string; from: string; unpack: boolean }[];
  attempts: JobAttempt[];
  artifacts: JobArtifact[];
}

export interface JobInfo {
  name: string;
  type: 'batch' | 'cron';
  spec: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  schedule: { cron: string[]; timezone: string } | null;
  events: { at: string; type: string; reason: string; run: string | null }[];
  runs: JobRun[];
}

/** A spec as JSON (see the README's job spec), or its TOML text as `{toml}`. */
export type JobSpecInput = { toml: string } | Record<string, unknown>;

const ENDED: readonly JobRunState[] = ['succeeded', 'failed', 'cancelled'];
const enc = encodeURIComponent;

export class Jobs {
  constructor(private readonly c: Client) {}

  /**
   * Submit a spec: a batch job's run is queued now; a cron job is scheduled. With `wait` (seconds,
   * at most 300) the answer comes once that run has ended — submit and wait in one request — or
   * at the timeout with the run as it is then (`wait(run.id)` waits on); a daemon of an older
   * release answers at once.
   */
  submit(spec: JobSpecInput, opts: { wait?: number; signal?: AbortSignal } = {}): Promise<JobInfo> {
    const q = opts.wait === undefined ? '' : `?wait=${opts.wait}`;
    return this.c.request<JobInfo>('POST', `/v1/jobs${q}`, spec, opts.signal);
  }

  async list(): Promise<JobInfo[]> {
    return (await this.c.request<{ jobs: JobInfo[] }>('GET', '/v1/jobs')).jobs;
  }

  /** A job by name, or the job of a run id. */
  get(ref: string): Promise<JobInfo> {
    return this.c.request<JobInfo>('GET', `/v1/jobs/${enc(ref)}`);
  }

  /** The run `ref` means: a run id, or a job's latest run. */
  async run(ref: string): Promise<JobRun> {
    const job = await this.get(ref);
    const run = job.runs.find((r) => r.id === ref) ?? job.runs.at(-1);
    if (!run) throw new Error(`job ${ref} has not run yet`);
    return run;
  }

  /**
   * Wait until the run ends; its record. The daemon answers when it ends (`GET
   * /v1/jobs/{ref}/wait`, asked again every 30 s while it runs); a daemon without that route is
   * polled every `intervalMs` (250 by default).
   */
  async wait(ref: string, opts: { intervalMs?: number; signal?: AbortSignal } = {}): Promise<JobRun> {
    for (let served = true; ;) {
      opts.signal?.throwIfAborted();
      if (served) {
        try {
          const run = await this.c.request<JobRun>('GET', `/v1/jobs/${enc(ref)}/wait?timeout=30`, undefined, opts.signal);
          if (ENDED.includes(run.state)) return run;
          continue;
        } catch (e) {
          // An older daemon: the route is unknown (its 404 is no job's).
          if (!(e instanceof RealmError && e.status === 404 && e.code !== 'JOB_NOT_FOUND')) throw e;
          served = false;
        }
      }
      const run = await this.run(ref);
      if (ENDED.includes(run.state)) return run;
      await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
    }
  }

  async cancel(ref: string): Promise<JobRun[]> {
    return (await this.c.request<{ runs: JobRun[] }>('POST', `/v1/jobs/${enc(ref)}/cancel`)).runs;
  }

  async remove(ref: string): Promise<void> {
    await this.c.request('DELETE', `/v1/jobs/${enc(ref)}`);
  }

  artifacts(ref: string): Promise<JobArtifact[]> {
    return this.c.request<JobArtifact[]>('GET', `/v1/jobs/${enc(ref)}/artifacts`);
  }

  /** An artifact's bytes: a file as it is, a directory as a tar. */
  async download(ref: string, name: string, signal?: AbortSignal): Promise<Buffer> {
    const chunks: Uint8Array[] = [];
    for await (const c of await this.c.stream('GET', `/v1/jobs/${enc(ref)}/artifacts/${enc(name)}`, undefined, signal))
      chunks.push(c);
    return Buffer.concat(chunks);
  }

  /** The log of a run's attempt (its last one unless `attempt`), as text. */
  async log(ref: string, attempt?: number): Promise<string> {
    const chunks: Uint8Array[] = [];
    for await (const c of await this.c.stream('GET', `/v1/jobs/${enc(ref)}/logs${attempt ? `?attempt=${attempt}` : ''}`))
      chunks.push(c);
    return Buffer.concat(chunks).toString('utf8');
  }

  /** The log as it is written: what is there, then (with `follow`) each write until the attempt ends. */
  async *follow(ref: string, opts: { attempt?: number; follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<string> {
    const q = new URLSearchParams();
    if (opts.attempt) q.set('attempt', String(opts.attempt));
    if (opts.follow !== false) q.set('follow', '1');
    const body = await this.c.stream('GET', `/v1/jobs/${enc(ref)}/logs/stream?${q.toString()}`, undefined, opts.signal);
    for await (const m of readSse(body)) {
      if (m.event === 'log') yield (JSON.parse(m.data) as { data: string }).data;
      else if (m.event === 'end') return;
    }
  }
}
