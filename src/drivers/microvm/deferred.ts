/**
 * A process handle for a program that starts later (a one-shot run's files are written first).
 * Killed before it started (a wall-time limit, a cancel), it does not wait for a start that may
 * never come (a guest that stalls while its files are written): `abort` tears the sandbox down,
 * and the program ends as killed.
 */
import { PassThrough, Writable } from 'node:stream';
import type { DriverProcess, ExitInfo } from '../driver.js';

const KILLED: ExitInfo = { exitCode: null, signal: 'SIGKILL', oomKilled: false, cpuMs: 0, memoryBytes: 0 };

/** A DriverProcess whose real process starts once `p` resolves (files are written first). */
export function deferred(p: Promise<DriverProcess>, hasStdin: boolean, abort: () => Promise<void>): DriverProcess {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const pending: Buffer[] = [];
  let real: DriverProcess | undefined;
  let stdinEnded = false;
  let aborted = false;
  const stdin = new Writable({
    write(chunk: Buffer, _e, cb) {
      if (real?.stdin) real.stdin.write(chunk, cb);
      else {
        pending.push(chunk);
        cb();
      }
    },
    final(cb) {
      stdinEnded = true;
      real?.stdin?.end();
      cb();
    },
  });
  const ready = p.then((r) => {
    real = r;
    if (aborted) {
      // Started as it was killed: its sandbox is going (abort), and its output is not wanted.
      void r.kill();
      r.stdout.resume();
      r.stderr.resume();
      return r;
    }
    r.stdout.pipe(stdout);
    r.stderr.pipe(stderr);
    for (const c of pending.splice(0)) r.stdin?.write(c);
    if (stdinEnded) r.stdin?.end();
    return r;
  });
  ready.catch((e: Error) => {
    stderr.end(aborted ? undefined : `realm: ${e.message}\n`);
    stdout.end();
  });
  return {
    stdin: hasStdin ? stdin : null,
    stdout,
    stderr,
    signal: (sig) =>
      void ready.then(
        (r) => r.signal(sig),
        () => undefined,
      ),
    kill: async () => {
      if (real) return real.kill();
      aborted = true;
      await abort();
      stdout.end();
      stderr.end();
    },
    wait: () =>
      ready.then(
        (r) => r.wait(),
        (e: unknown) => {
          if (aborted) return KILLED;
          throw e;
        },
      ),
    release: () => Promise.resolve(),
  };
}
