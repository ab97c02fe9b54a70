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
  const deliver = (sink: PassThrough, payload: Buffer): void => {
    outputSeen = true;
    // Back-pressure: hold the runner's output while the reader holds ours.
    if (!sink.write(Buffer.from(payload))) {
      proc.stdout.pause();
      sink.once('drain', () => proc.stdout.resume());
    }
  };
  const reader = new FrameReader((kind, payload) => {
    if (kind === FRAME_STDOUT) deliver(stdout, payload);
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
      onResult(result);
    } else if (kind === FRAME_COMPILED && compiledWanted && !outputSeen && payload.length <= MAX_COMPILED_BYTES) {
      // Taken only before the program wrote anything: the compiler's work, not the program's.
      const take = compiledWanted;
      compiledWanted = undefined;
      take(Buffer.from(payload));
    }
  });
  proc.stdout.on('data', (c: Buffer) => reader.push(c));
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
