/**
 * A one-shot sandbox's stdout and stderr, which the driver can end as soon as the program has.
 *
 * The pipes only reach end-of-file when bubblewrap exits, which comes a millisecond or two
 * (more on a busy host) after realm-init reported the program's end: PID 1's exit tears down
 * the namespaces first. Everything the program wrote is already in the pipes when realm-init
 * reports, so the driver reads them dry at that moment and ends the streams the engine reads.
 */
import { readSync } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';

export interface EndableOutput {
  /** What the engine reads: the pipe's bytes, ended by the pipe or by `finish`. */
  readonly stream: Readable;
  /** Take what the pipe holds now, synchronously, then end the stream and let the pipe go. */
  finish(): void;
}

export function endableOutput(pipe: Readable): EndableOutput {
  const out = new PassThrough();
  let done = false;
  const forward = (chunk: Buffer): void => {
    if (!done) out.write(chunk);
  };
  const end = (): void => {
    if (done) return;
    done = true;
    out.end();
  };
  pipe.on('data', forward);
  pipe.once('end', end);
  pipe.once('error', end);
  pipe.once('close', end);
  return {
    stream: out,
    finish: () => {
      if (done) return;
      // Chunks Node already read but has not handed out yet come first (read() emits them)…
      while (pipe.read() !== null) {
        /* forwarded by the 'data' listener */
      }
      // …then whatever is still in the kernel's buffer, read until it would block.
      const fd = (pipe as unknown as { _handle?: { fd?: number } })._handle?.fd;
      if (typeof fd === 'number' && fd >= 0) {
        const buf = Buffer.allocUnsafe(65536);
        for (;;) {
          let n = 0;
          try {
            n = readSync(fd, buf, 0, buf.length, null);
          } catch {
            break; // EAGAIN: empty
          }
          if (n <= 0) break;
          out.write(Buffer.from(buf.subarray(0, n)));
        }
      }
      pipe.off('data', forward);
      pipe.destroy();
      end();
    },
  };
}
