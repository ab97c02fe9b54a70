/**
 * The wasm runners' protocol (native/realm-wasm.c; runner.py for components): a job of records on
 * the runner's stdin (the program's stdin follows it), frames back on its stdout. `runnerProcess`
 * turns a runner's host process into the exec the engine sees: the program's stdout and stderr,
 * its stdin, and an exit whose `reason` says a fuel or deadline trap.
 */
import { PassThrough } from 'node:stream';
import type { DriverProcess, ExitInfo } from '../driver.js';

export const FRAME_STDOUT = 1;
export const FRAME_STDERR = 2;
export const FRAME_RESULT = 3;
/** The compiled module (Wasmtime's serialized form), sent once compiled and before anything ran. */
export const FRAME_COMPILED = 4;

/** A directory the module may open (a WASI preopen). */
export interface Preopen {
  host: string;
  guest: string;
  readOnly: boolean;
}

export interface Job {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  memoryBytes: number;
  fuel?: number | undefined;
  timeoutMs?: number | undefined;
  stdin: boolean;
  dirs: Preopen[];
  /** Ask for the compiled module back (FRAME_COMPILED) before it runs. */
  serialize?: boolean;
  /** The module compiled before (from the cache). */
  compiled?: Buffer | undefined;
}

/** How the runner says the program ended (the last frame). */
export interface RunnerResult {
  status: 'exit' | 'trap' | 'error';
  code?: number;
  reason?: 'fuel' | 'deadline' | 'trap';
  error?: string;
  message?: string;
  memoryBytes?: number;
  cpuMs?: number;
  fuelUsed?: number;
}

/** One job record: tag (one byte) + u32 length + bytes. */
export function rec(tag: string, value: string | Buffer): Buffer {
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  const head = Buffer.alloc(5);
  head.write(tag, 0, 'latin1');
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

/** The job's records: tag (one byte) + u32 length + bytes, ending with 'X'. */
export function encodeJob(job: Job): Buffer {
  return Buffer.concat([
    ...job.argv.map((a) => rec('A', a)),
    ...Object.entries(job.env).map(([k, v]) => rec('E', `${k}=${v}`)),
    rec('C', job.cwd),
    ...job.dirs.map((d) => rec('D', `${d.readOnly ? 'r' : 'w'}${d.host}\0${d.guest}`)),
    rec('M', String(job.memoryBytes)),
    ...(job.fuel ? [rec('F', String(job.fuel))] : []),
    ...(job.timeoutMs ? [rec('T', String(job.timeoutMs))] : []),
    ...(job.stdin ? [rec('I', '')] : []),
    ...(job.serialize ? [rec('S', '')] : []),
    ...(job.compiled ? [rec('K', job.compiled)] : []),
    rec('X', ''),
  ]);
}

/** The largest frame other than output that is kept whole (a result, a compiled module). */
const MAX_WHOLE_FRAME = 64 * 1024 ** 2;

/**
 * Splits a runner's stdout into frames, as a stream: output frames (stdout, stderr) are handed on
 * in the pieces they arrive in (one fd_write may be as large as the module's memory, and is never
 * held whole); other frames are kept until complete, and dropped past MAX_WHOLE_FRAME. Nothing is
 * copied but a frame's header and its kept pieces.
 */
export class FrameReader {
  private head = Buffer.alloc(0);
  private kind = -1;
  private left = 0;
  private parts: Buffer[] = [];
  private kept = 0;
  constructor(private readonly onFrame: (kind: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.kind < 0) {
        const need = 5 - this.head.length;
        this.head = Buffer.concat([this.head, chunk.subarray(at, at + need)]);
        at += Math.min(need, chunk.length - at);
        if (this.head.length < 5) return;
        this.kind = this.head[0] ?? -1;
        this.left = this.head.readUInt32BE(1);
        this.head = Buffer.alloc(0);
        this.parts = [];
        this.kept = 0;
      }
      const piece = chunk.subarray(at, at + this.left);
      at += piece.length;
      this.left -= piece.length;
      if (this.kind === FRAME_STDOUT || this.kind === FRAME_STDERR) {
        if (piece.length) this.onFrame(this.kind, piece);
      } else if (this.kept + piece.length <= MAX_WHOLE_FRAME) {
        this.parts.push(piece);
        this.kept += piece.length;
      } else this.kept = Infinity;
      if (this.left === 0) {
        const kind = this.kind;
        this.kind = -1;
        if (kind !== FRAME_STDOUT && kind !== FRAME_STDERR && this.kept !== Infinity)
          this.onFrame(kind, this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts));
        this.parts = [];
      }
    }
  }
}

/** The largest compiled module taken into the cache. */
const MAX_COMPILED_BYTES = MAX_WHOLE_FRAME;

export interface RunnerProcess extends DriverProcess {
  /** Start the job (once). `onCompiled` receives the compiled module when the job asked for it. */
  send(job: Job, onCompiled?: (bytes: Buffer) => void): void;
}

/** The exit the engine sees, from the runner's result (and the runner's own exit, if it came first). */
function fromResult(result: RunnerResult, info: ExitInfo): ExitInfo {
  const code = result.status === 'exit' ? (result.code ?? 0) : 1;
  return {
    ...info,
    exitCode: info.signal ? info.exitCode : code,
    memoryBytes: result.memoryBytes ?? info.memoryBytes,
    cpuMs: result.cpuMs ?? info.cpuMs,
    ...(result.reason === 'fuel' ? { reason: 'fuel-exhausted' as const } : {}),
    ...(result.reason === 'deadline' ? { reason: 'timeout' as const } : {}),
  };
}

/** Wraps a started runner: its frames become the exec's streams and exit. */
export function runnerProcess(proc: DriverProcess): RunnerProcess {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let result: RunnerResult | undefined;
  let outputSeen = false;
  let compiledWanted: ((bytes: Buffer) => void) | undefined;
  let onResult!: (r: RunnerResult) => void;
  const resulted = new Promise<RunnerResult>((resolve) => (onResult = resolve));
  // Output is passed on a read at a time, not a frame at a time: a module writing one byte per
  // fd_write makes a frame per byte, which would otherwise be a stream write per byte.
  let pending: { sink: PassThrough; parts: Buffer[] } | undefined;
  const flush = (): void => {
    if (!pending) return;
    const { sink, parts } = pending;
    pending = undefined;
    // Back-pressure: hold the runner's output while the reader holds ours.
    if (!sink.write(Buffer.concat(parts))) {
      proc.stdout.pause();
      sink.once('drain', () => proc.stdout.resume());
    }
  };
  const deliver = (sink: PassThrough, payload: Buffer): void => {
    outputSeen = true;
    if (pending && pending.sink !== sink) flush();
    (pending ??= { sink, parts: [] }).parts.push(payload);
  };
  const reader = new FrameReader((kind, payload) => {
    if (kind === FRAME_STDOUT) deliver(stdout, payload);
    else if (kind === FRAME_STDERR) deliver(stderr, payload);
    else if (kind === FRAME_RESULT && !result) {
      flush();
      try {
        result = JSON.parse(payload.toString('utf8')) as RunnerResult;
      } catch {
        result = { status: 'error', message: 'the wasm runner sent a result that is not JSON' };
      }
      if (result.status !== 'exit' && result.message) {
        stderr.write(`${result.status === 'error' ? 'error' : 'wasm trap'}: ${result.message}\n`);
      }
      onResult(result);
    } else if (kind === FRAME_COMPILED && compiledWanted && !outputSeen && payload.length <= MAX_COMPILED_BYTES) {
      // Taken only before the program wrote anything: the compiler's work, not the program's.
      const take = compiledWanted;
      compiledWanted = undefined;
      take(Buffer.from(payload));
    }
  });
  proc.stdout.on('data', (c: Buffer) => {
    reader.push(c);
    flush();
  });
  // The runner's own errors (not the program's): the last of them say why it died.
  let runnerErrors = '';
  proc.stderr.on('data', (c: Buffer) => {
    runnerErrors = (runnerErrors + c.toString('utf8')).slice(-2000);
  });
  const closed = Promise.all([
    new Promise<void>((r) => proc.stdout.once('close', r).once('end', r)),
    new Promise<void>((r) => proc.stderr.once('close', r).once('end', r)),
  ]);
  const hostExit = proc.wait();
  // The program's end is its result frame (the last; its output came before it): the runner's
  // own exit is not waited for. A runner that dies without one (killed at a limit) ends with its exit.
  const exit = Promise.race([resulted.then((r) => ({ r })), hostExit.then((info) => ({ info }))]).then(
    async (first): Promise<ExitInfo> => {
      if ('r' in first) {
        stdout.end();
        stderr.end();
        return fromResult(first.r, { exitCode: null, signal: null, oomKilled: false, cpuMs: 0, memoryBytes: 0 });
      }
      await Promise.race([closed, new Promise((r) => setTimeout(r, 100).unref())]);
      const why = runnerErrors.trim().split('\n').pop();
      if (!result && why && !first.info.signal) stderr.write(`realm-wasm: ${why}\n`);
      stdout.end();
      stderr.end();
      return result ? fromResult(result, first.info) : first.info;
    },
  );
  return {
    stdin: proc.stdin,
    stdout,
    stderr,
    signal: (sig) => proc.signal(sig),
    kill: () => proc.kill(),
    wait: () => exit,
    release: () => proc.release(),
    send(job, onCompiled) {
      if (onCompiled) compiledWanted = onCompiled;
      proc.stdin?.on('error', () => undefined);
      proc.stdin?.write(encodeJob({ ...job, ...(onCompiled ? { serialize: true } : {}) }));
    },
  };
}
