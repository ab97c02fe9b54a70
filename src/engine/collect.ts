/**
 * Drive one exec to its end under a wall-time and an output limit, and give it a verdict.
 * Limits are enforced here, for every driver alike: the driver only has to kill the tree.
 */
import type { DriverProcess } from '../drivers/driver.js';
import type { ExecResult, Verdict } from './schemas.js';

export interface CollectOptions {
  timeoutMs: number;
  /** Combined stdout+stderr bytes kept; more kills the exec with verdict `output-limit`. */
  outputBytes: number;
  stdin?: string | undefined;
  /** Called with each chunk as it arrives (for streaming). */
  onData?: ((stream: 'stdout' | 'stderr', chunk: Buffer) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** How long output pipes may stay open after the main process exits (held by background children). */
const PIPE_GRACE_MS = 100;

export async function collect(proc: DriverProcess, opts: CollectOptions): Promise<ExecResult> {
  const started = performance.now();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let total = 0;
  let limited = false;
  let timedOut = false;

  const take = (stream: 'stdout' | 'stderr', sink: Buffer[]) => (chunk: Buffer) => {
    if (limited) return;
    const room = opts.outputBytes - total;
    if (chunk.length > room) {
      if (room > 0) sink.push(chunk.subarray(0, room));
      total = opts.outputBytes;
      limited = true;
      void proc.kill();
      return;
    }
    sink.push(chunk);
    total += chunk.length;
    opts.onData?.(stream, chunk);
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
    void proc.kill();
  }, opts.timeoutMs);
  const onAbort = (): void => void proc.kill();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const exit = await proc.wait();
    const wallMs = Math.round(performance.now() - started);
    // Background children may hold the pipes open; give them a moment, then stop listening.
    const grace = new Promise<void>((r) => setTimeout(r, PIPE_GRACE_MS).unref());
    await Promise.race([ended, grace]);
    proc.stdout.destroy();
    proc.stderr.destroy();
    const verdict: Verdict = timedOut ? 'timeout' : limited ? 'output-limit' : exit.oomKilled ? 'oom' : exit.exitCode === 0 ? 'ok' : 'runtime-error';
    return {
      stdout: Buffer.concat(out).toString('utf8'),
      stderr: Buffer.concat(err).toString('utf8'),
      exitCode: exit.exitCode,
      signal: exit.signal,
      verdict,
      wallMs,
      cpuMs: exit.cpuMs,
      memoryBytes: exit.memoryBytes,
    };
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

function endOf(s: NodeJS.ReadableStream): Promise<void> {
  return new Promise((resolve) => {
    s.once('end', resolve);
    s.once('close', resolve);
    s.once('error', () => resolve());
  });
}
