/**
 * The wasm runner's protocol (see runner.py): a job (length-prefixed JSON, then the files' and a
 * compiled module's bytes) on its stdin, frames back on its stdout. `runnerProcess` turns a
 * runner's host process into the exec the engine sees: the program's stdout and stderr, its stdin,
 * and an exit whose `reason` says a fuel or deadline trap.
 */
import { PassThrough } from 'node:stream';
import type { DriverProcess, ExitInfo, FileToWrite } from '../driver.js';

export const FRAME_READY = 0;
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

/** The bytes that start a job: header, files, then (if given) the compiled module. */
export function encodeJob(job: Job, files: FileToWrite[], compiled?: Buffer): Buffer {
  const bodies = files.map((f) => (typeof f.content === 'string' ? Buffer.from(f.content) : f.content));
  const header = Buffer.from(
    JSON.stringify({
      ...job,
      files: files.map((f, i) => ({ path: f.path, size: bodies[i]?.length ?? 0, mode: f.mode ?? 0o644 })),
      ...(compiled ? { compiledSize: compiled.length } : {}),
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32BE(header.length);
  return Buffer.concat([len, header, ...bodies, ...(compiled ? [compiled] : [])]);
}

/** Splits a runner's stdout into frames. */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly onFrame: (kind: number, payload: Buffer) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (this.buf.length < 5 + len) break;
      const kind = this.buf[0] ?? -1;
      const payload = this.buf.subarray(5, 5 + len);
      this.buf = this.buf.subarray(5 + len);
      this.onFrame(kind, payload);
    }
  }
}

/** The largest compiled module taken into the cache. */
const MAX_COMPILED_BYTES = 64 * 1024 ** 2;

export interface RunnerProcess extends DriverProcess {
  /** Resolves once the runner has imported its engine and waits for a job. */
  ready: Promise<void>;
  /** True once the runner process ended. */
  exited(): boolean;
  /** Start the job (once). `onCompiled` receives the compiled module when the job asked for it. */
  send(job: Job, files: FileToWrite[], compiled?: Buffer, onCompiled?: (bytes: Buffer) => void): void;
}

/** Wraps a started runner: its frames become the exec's streams and exit. */
export function runnerProcess(proc: DriverProcess): RunnerProcess {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let result: RunnerResult | undefined;
  let outputSeen = false;
  let compiledWanted: ((bytes: Buffer) => void) | undefined;
  let ended = false;
  let markReady!: () => void;
  let failReady!: (e: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    markReady = resolve;
    failReady = reject;
  });
  ready.catch(() => undefined);
  const deliver = (sink: PassThrough, payload: Buffer): void => {
    outputSeen = true;
    // Back-pressure: hold the runner's output while the reader holds ours.
    if (!sink.write(Buffer.from(payload))) {
      proc.stdout.pause();
      sink.once('drain', () => proc.stdout.resume());
    }
  };
  const reader = new FrameReader((kind, payload) => {
    if (kind === FRAME_READY) markReady();
    else if (kind === FRAME_STDOUT) deliver(stdout, payload);
    else if (kind === FRAME_STDERR) deliver(stderr, payload);
    else if (kind === FRAME_RESULT && !result) {
      try {
        result = JSON.parse(payload.toString('utf8')) as RunnerResult;
      } catch {
        result = { status: 'error', message: 'the wasm runner sent a result that is not JSON' };
      }
      if (result.status !== 'exit' && result.message) {
        stderr.write(`${result.status === 'error' ? 'error' : 'wasm trap'}: ${result.message}\n`);
      }
    } else if (kind === FRAME_COMPILED && compiledWanted && !outputSeen && payload.length <= MAX_COMPILED_BYTES) {
      // Taken only before the program wrote anything: the compiler's work, not the program's.
      const take = compiledWanted;
      compiledWanted = undefined;
      take(Buffer.from(payload));
    }
  });
  proc.stdout.on('data', (c: Buffer) => reader.push(c));
  // The runner's own errors (Python's), not the program's: the last of them say why it died.
  let runnerErrors = '';
  proc.stderr.on('data', (c: Buffer) => {
    runnerErrors = (runnerErrors + c.toString('utf8')).slice(-2000);
  });
  const closed = Promise.all([
    new Promise<void>((r) => proc.stdout.once('close', r).once('end', r)),
    new Promise<void>((r) => proc.stderr.once('close', r).once('end', r)),
  ]);
  const exit = proc.wait().then(async (info): Promise<ExitInfo> => {
    ended = true;
    const why = runnerErrors.trim().split('\n').pop();
    failReady(
      new Error(`the wasm runner ended before it was ready${why ? `: ${why}` : ` (exit ${info.exitCode ?? info.signal})`}`),
    );
    await Promise.race([closed, new Promise((r) => setTimeout(r, 100).unref())]);
    stdout.end();
    stderr.end();
    if (!result) return info;
    const code = result.status === 'exit' ? (result.code ?? 0) : 1;
    return {
      ...info,
      exitCode: info.signal ? info.exitCode : code,
      memoryBytes: result.memoryBytes ?? info.memoryBytes,
      cpuMs: result.cpuMs ?? info.cpuMs,
      ...(result.reason === 'fuel' ? { reason: 'fuel-exhausted' as const } : {}),
      ...(result.reason === 'deadline' ? { reason: 'timeout' as const } : {}),
    };
  });
  return {
    ready,
    exited: () => ended,
    stdin: proc.stdin,
    stdout,
    stderr,
    signal: (sig) => proc.signal(sig),
    kill: () => proc.kill(),
    wait: () => exit,
    release: () => proc.release(),
    send(job, files, compiled, onCompiled) {
      if (onCompiled) compiledWanted = onCompiled;
      proc.stdin?.on('error', () => undefined);
      proc.stdin?.write(encodeJob({ ...job, ...(onCompiled ? { serialize: true } : {}) }, files, compiled));
    },
  };
}
