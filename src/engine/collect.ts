/**
 * Drive one exec to its end under a wall-time and an output limit, and give it a verdict.
 * Limits are enforced here, for every driver alike: the driver only has to kill the tree.
 */
import type { DriverProcess } from '../drivers/driver.js';
import { ByteLog, type OutputBudget } from './output.js';
import type { ExecResult, Verdict } from './schemas.js';

/**
 * Called with each chunk as it arrives. A returned promise asks for back-pressure: the exec's
 * output is not read (so the program blocks in write) until it settles.
 */
export type OutputListener = (stream: 'stdout' | 'stderr', chunk: Buffer) => void | Promise<void>;

export interface CollectOptions {
  timeoutMs: number;
  /** Combined stdout+stderr bytes kept; more kills the exec with verdict `output-limit`. */
  outputBytes: number;
  stdin?: string | Buffer | undefined;
  /** Called with each chunk as it arrives (for streaming). */
  onData?: OutputListener | undefined;
  signal?: AbortSignal | undefined;
  /** The daemon-wide output budget: output past it ends the exec with verdict `output-limit`. */
  budget?: OutputBudget | undefined;
}

/** How long output pipes may stay open after the main process exits (held by background children). */
const PIPE_GRACE_MS = 100;

/**
 * Thrashing is an out-of-memory end: a program whose memory limit leaves no room for its own code
 * (a compiler under a small limit) is not OOM-killed by the kernel, which keeps evicting the code
 * and reading it back in, and would run on at a crawl until its time is up. Every THRASH_POLL_MS
 * the exec's refaults since the last look are checked; once THRASH_POLLS looks in a row each
 * re-read a quarter of the limit or more (the limit's worth every second) with major faults among
 * them (mapped pages, its code, coming back), the program ends with `oom`. A program that reads
 * files again and again (read(), no faults) is slow, not starved, and runs on.
 */
const THRASH_POLL_MS = 250;
const THRASH_POLLS = 4;
const THRASH_MAJOR_FAULTS = 4;
/** When the first reading is taken: a program that is done by then (most one-shot runs) is never read. */
const THRASH_FIRST_MS = 50;

export async function collect(proc: DriverProcess, opts: CollectOptions): Promise<ExecResult> {
  const started = performance.now();
  const out = new ByteLog(opts.budget);
  const err = new ByteLog(opts.budget);
  let total = 0;
  let limited = false;
  let timedOut = false;
  let starved = false;
  // Back-pressure from a slow reader holds the output while the program runs; once it ended or
  // is being killed, what is left in the pipes (bounded by their size) is read at once.
  let free = false;
  let paused = false;
  const resume = (): void => {
    if (!paused) return;
    paused = false;
    proc.stdout.resume();
    proc.stderr.resume();
  };
  const kill = (): void => {
    free = true;
    resume();
    void proc.kill();
  };

  const take = (stream: 'stdout' | 'stderr', sink: ByteLog) => (chunk: Buffer) => {
    if (limited) return;
    const room = opts.outputBytes - total;
    const kept = sink.append(room < chunk.length ? chunk.subarray(0, room) : chunk);
    total += kept;
    if (kept < chunk.length) {
      limited = true;
      if (kept > 0) void opts.onData?.(stream, chunk.subarray(0, kept));
      kill();
      return;
    }
    const wait = opts.onData?.(stream, chunk);
    if (wait && !free) {
      if (!paused) {
        paused = true;
        proc.stdout.pause();
        proc.stderr.pause();
      }
      void wait.then(resume, resume);
    }
  };
  proc.stdout.on('data', take('stdout', out));
  proc.stderr.on('data', take('stderr', err));
  const ended = Promise.all([endOf(proc.stdout), endOf(proc.stderr)]);

  if (proc.stdin) {
    proc.stdin.on('error', () => undefined); // the program may exit without reading its input
    proc.stdin.end(opts.stdin ?? '');
  }

  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, opts.timeoutMs);
  const onAbort = (): void => kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  const unwatch = proc.memoryStall
    ? watchThrashing(proc.memoryStall.bind(proc), () => {
        starved = true;
        kill();
      })
    : undefined;
  try {
    const exit = await proc.wait();
    free = true;
    resume();
    const wallMs = Math.round(performance.now() - started);
    // Background children may hold the pipes open; give them a moment, then stop listening.
    const grace = new Promise<void>((r) => setTimeout(r, PIPE_GRACE_MS).unref());
    await Promise.race([ended, grace]);
    proc.stdout.destroy();
    proc.stderr.destroy();
    const verdict: Verdict =
      timedOut || exit.reason === 'timeout'
        ? 'timeout'
        : exit.reason === 'fuel-exhausted'
          ? 'fuel-exhausted'
          : limited
            ? 'output-limit'
            : exit.oomKilled || starved
              ? 'oom'
              : exit.exitCode === 0
                ? 'ok'
                : 'runtime-error';
    return {
      stdout: out.bytes().toString('utf8'),
      stderr: err.bytes().toString('utf8'),
      exitCode: exit.exitCode,
      signal: exit.signal,
      verdict,
      wallMs,
      cpuMs: exit.cpuMs,
      memoryBytes: exit.memoryBytes,
    };
  } finally {
    clearTimeout(timer);
    unwatch?.();
    opts.signal?.removeEventListener('abort', onAbort);
    out.release();
    err.release();
  }
}

function endOf(s: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}

/**
 * Polls an exec's refaults; calls `starved` once (and stops) when it has been thrashing. The first
 * reading is taken THRASH_FIRST_MS after the start, not on the run's way (a read of the cgroup's
 * memory.stat while the program starts).
 */
function watchThrashing(
  stall: () => { limitBytes: number; bytes: number; majorFaults: number },
  starved: () => void,
): () => void {
  let last: ReturnType<typeof stall> | undefined;
  const first = setTimeout(() => (last ??= stall()), THRASH_FIRST_MS);
  first.unref();
  let run = 0;
  const timer = setInterval(() => {
    const now = stall();
    last ??= now;
    run = now.bytes - last.bytes >= now.limitBytes / 4 && now.majorFaults - last.majorFaults >= THRASH_MAJOR_FAULTS ? run + 1 : 0;
    last = now;
    if (run >= THRASH_POLLS) {
      clearInterval(timer);
      starved();
    }
  }, THRASH_POLL_MS);
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
