/**
 * One log file per attempt (stdout and stderr interleaved, as a terminal shows them), kept under
 * the data dir after the attempt and its sandbox are gone, bounded by the attempt's output limit
 * (past it the attempt ends with verdict `output-limit`). Readers tail it: what is in the file,
 * then what is written while they listen, until the attempt ends.
 *
 * @example
 * const log = logs.open('run-1a2b', 1); log.write(Buffer.from('hi\n')); await log.end();
 * logs.follow('run-1a2b', 1, 0, (c) => out.write(c), () => out.end());
 */
import { EventEmitter } from 'node:events';
import { createReadStream, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, open as fsOpen, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { log } from '../logs/log.js';
import { errorMessage } from '../util/errors.js';
import type { JobRunRecord } from './records.js';

/** Where a run's logs were dropped to keep the node's job logs under their bound: a file beside them. */
const DROPPED = 'dropped';

export interface LogWriter {
  write(chunk: Buffer): void;
  /** No more chunks; resolves once every one written is in the file and it is closed (never rejects). */
  end(): Promise<void>;
  readonly bytes: number;
}

/** A log being written. */
interface Live {
  /** `data` for each chunk written, `end` once all of them are in the file and it is closed. */
  events: EventEmitter;
  /** Bytes in the file. */
  flushed: number;
  /** Chunks written and not in the file yet, in order. */
  pending: Buffer[];
  /** Its run was removed meanwhile: nothing more is made or written. */
  removed: boolean;
  /** Settles once every chunk written so far is in the file (or could not be). */
  written: Promise<unknown>;
  /** Settles once the log ended and is closed (undefined while it is open). */
  done?: Promise<void>;
}

export class JobLogs {
  /** Logs being written: readers that follow one hear of each write and of its end. */
  private readonly live = new Map<string, Live>();
  /** Bytes of every log on disk (counted once at start, then kept up to date). */
  private bytes = 0;
  /** Runs whose logs were dropped, and when. */
  private readonly droppedAt = new Map<string, number>();

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const run of readdirSync(dir)) {
      this.bytes += this.sizeOf(run);
      const at = this.readDropped(run);
      if (at !== undefined) this.droppedAt.set(run, at);
    }
  }

  /** Bytes of every job log on this node. */
  get total(): number {
    return this.bytes;
  }

  /** When `run`'s logs were dropped (see drop), if they were. */
  dropped(run: string): number | undefined {
    return this.droppedAt.get(run);
  }

  private sizeOf(run: string): number {
    let n = 0;
    try {
      for (const f of readdirSync(join(this.dir, run))) if (f.endsWith('.log')) n += statSync(join(this.dir, run, f)).size;
    } catch {
      /* no logs */
    }
    return n;
  }

  private readDropped(run: string): number | undefined {
    try {
      return Number(readFileSync(join(this.dir, run, DROPPED), 'utf8')) || undefined;
    } catch {
      return undefined;
    }
  }

  /**
   * Drop an ended run's logs: each attempt's becomes one line saying so (a reader learns why it is
   * empty), and the run is marked (`dropped`). Returns the bytes freed.
   */
  drop(run: string, why: string): number {
    const before = this.sizeOf(run);
    if (before === 0) return 0;
    const now = Date.now();
    for (const f of readdirSync(join(this.dir, run)).filter((x) => x.endsWith('.log'))) {
      const file = join(this.dir, run, f);
      const was = statSync(file).size;
      writeFileSync(file, `realm: this log (${was} bytes) was dropped at ${new Date(now).toISOString()}: ${why}\n`, {
        mode: 0o600,
      });
    }
    writeFileSync(join(this.dir, run, DROPPED), String(now), { mode: 0o600 });
    this.droppedAt.set(run, now);
    const after = this.sizeOf(run);
    this.bytes -= before - after;
    return before - after;
  }

  file(run: string, attempt: number): string {
    return join(this.dir, run, `${attempt}.log`);
  }

  /**
   * A writer for an attempt's log. Its directory and file are made, and its chunks written, off
   * the attempt's way (in order, by the thread pool): the command starts meanwhile, and what it
   * says first is held until the file is open. Until everything written has reached the file and
   * it is closed, the log counts as being written: readers take what is on disk, then the chunks
   * on their way, then (following) what comes.
   */
  open(run: string, attempt: number): LogWriter {
    const key = `${run}/${attempt}`;
    const file = this.file(run, attempt);
    const w: Live = { events: new EventEmitter(), flushed: 0, pending: [], removed: false, written: Promise.resolve() };
    this.live.set(key, w);
    let failed = false;
    const failure = (e: unknown): void => {
      if (failed || w.removed) return;
      failed = true;
      log.error(`job run ${run} attempt ${attempt}: its log could not be written to ${file}: ${errorMessage(e)}`, {
        runId: run,
        err: e,
      });
    };
    // Never rejects: a failure is logged once, and the chunks are then kept in memory alone.
    const runDir = join(this.dir, run);
    const handle = mkdir(runDir, { recursive: true, mode: 0o700 })
      .then(async () => {
        if (!w.removed) return fsOpen(file, 'w', 0o600);
        await rm(runDir, { recursive: true, force: true }); // made again after the run's removal
        return undefined;
      })
      .catch((e: unknown) => void failure(e));
    w.written = handle;
    let bytes = 0;
    let open = true;
    return {
      write: (chunk) => {
        if (!open) return;
        bytes += chunk.length;
        w.events.emit('data', chunk);
        if (w.removed) return;
        this.bytes += chunk.length;
        w.pending.push(chunk);
        w.written = w.written
          .then(async () => {
            const h = await handle;
            if (h && !w.removed) await h.write(chunk, 0, chunk.length, null);
          })
          .catch(failure)
          .then(() => {
            w.pending.shift();
            w.flushed += chunk.length;
          });
      },
      end: () => {
        if (w.done) return w.done;
        open = false;
        w.done = w.written
          .then(async () => (await handle)?.close())
          .catch(failure)
          .finally(() => {
            this.live.delete(key);
            w.events.emit('end');
          });
        return w.done;
      },
      get bytes() {
        return bytes;
      },
    };
  }

  /** Once what every log was given has reached its file, and those ended are closed (the daemon's stop waits for it). */
  async settled(): Promise<void> {
    await Promise.all([...this.live.values()].map((w) => w.done ?? w.written));
  }

  /** Whether an attempt's log is still being written. */
  writing(run: string, attempt: number): boolean {
    return this.live.has(`${run}/${attempt}`);
  }

  /**
   * Read an attempt's log from byte `from`, then (when `follow` and it is still being written)
   * each new chunk until it ends; `done` is called once at the end. Returns a function that stops.
   */
  read(
    run: string,
    attempt: number,
    opts: { from?: number; follow?: boolean },
    onChunk: (c: Buffer) => void,
    done: () => void,
  ): () => void {
    const file = this.file(run, attempt);
    const writer = this.live.get(`${run}/${attempt}`);
    const events = opts.follow ? writer?.events : undefined;
    let stopped = false;
    const held: Buffer[] = [];
    let replaying = true;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      events?.off('data', onLive);
      events?.off('end', onEnd);
      done();
    };
    // Writes during the replay of the file are held, then given in order after it.
    const onLive = (c: Buffer): void => {
      if (replaying) held.push(c);
      else onChunk(c);
    };
    const onEnd = (): void => {
      if (!replaying) stop();
      else held.push(Buffer.alloc(0)); // an empty chunk marks the end
    };
    events?.on('data', onLive);
    events?.once('end', onEnd);
    // Being written: the file up to what has reached it, then the chunks still on their way.
    // An offset past what there is reads from the end.
    const size = writer ? writer.flushed : existsSync(file) ? statSync(file).size : 0;
    const onTheirWay = writer ? [...writer.pending] : [];
    const from = Math.min(opts.from ?? 0, size + onTheirWay.reduce((n, c) => n + c.length, 0));
    const start = Math.min(from, size);
    const replay = size > start ? createReadStream(file, { start, end: size - 1 }) : null;
    const finish = (): void => {
      replaying = false;
      let at = size;
      for (const c of onTheirWay) {
        const skip = Math.max(0, from - at);
        at += c.length;
        if (skip < c.length) onChunk(skip ? c.subarray(skip) : c);
      }
      for (const c of held.splice(0)) {
        if (c.length === 0) return stop();
        onChunk(c);
      }
      if (!events) stop();
    };
    if (replay) {
      replay.on('data', (c) => {
        if (!stopped) onChunk(c as Buffer);
      });
      replay.once('error', finish);
      replay.once('end', finish);
    } else queueMicrotask(finish);
    return stop;
  }

  /** The runs that have logs here. */
  runs(): string[] {
    return readdirSync(this.dir);
  }

  remove(run: string): void {
    this.bytes -= this.sizeOf(run);
    // A log still on its way to the file: its chunks not there yet are not counted, nor written.
    for (const [key, w] of this.live)
      if (key.startsWith(`${run}/`)) {
        w.removed = true;
        this.bytes -= w.pending.reduce((n, c) => n + c.length, 0);
      }
    this.droppedAt.delete(run);
    rmSync(join(this.dir, run), { recursive: true, force: true });
  }
}

/**
 * Keep the node's job logs under `maxBytes`: the logs of the runs that ended first are dropped
 * first (never a running one's). Checked as each run ends, so the total may pass the bound by what
 * the running attempts write meanwhile (each at most its own 64 MiB).
 */
export function boundLogs(logs: JobLogs, runs: JobRunRecord[], maxBytes: number): string[] {
  const dropped: string[] = [];
  if (logs.total <= maxBytes) return dropped;
  const ended = runs
    .filter((r) => r.endedAt !== undefined && logs.dropped(r.id) === undefined)
    .sort((a, b) => (a.endedAt ?? 0) - (b.endedAt ?? 0));
  for (const r of ended) {
    if (logs.total <= maxBytes) break;
    if (logs.writing(r.id, r.attempts.length)) continue;
    if (logs.drop(r.id, `this node keeps at most ${maxBytes} bytes of job logs, and this run's were the oldest`) > 0)
      dropped.push(r.id);
  }
  return dropped;
}
