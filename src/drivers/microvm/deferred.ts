/** A process handle for a program that starts later (a one-shot run's files are written first). */
import { PassThrough, Writable } from 'node:stream';
import type { DriverProcess } from '../driver.js';

/** A DriverProcess whose real process starts once `p` resolves (files are written first). */
export function deferred(p: Promise<DriverProcess>, hasStdin: boolean): DriverProcess {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const pending: Buffer[] = [];
  let real: DriverProcess | undefined;
  let stdinEnded = false;
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
    r.stdout.pipe(stdout);
    r.stderr.pipe(stderr);
    for (const c of pending.splice(0)) r.stdin?.write(c);
    if (stdinEnded) r.stdin?.end();
    return r;
  });
  ready.catch((e: Error) => {
    stderr.end(`realm: ${e.message}\n`);
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
      await ready.then(
        (r) => r.kill(),
        () => undefined,
      );
    },
    wait: () => ready.then((r) => r.wait()),
    release: () => Promise.resolve(),
  };
}
