/**
 * The daemon's end of a one-shot sandbox's socket (native/init-serve.c): text until PID 1 says
 * "ready" (a builder's error, if it failed), then the request goes in and the program's stdout
 * ("o N\n" + bytes), stderr ("e N\n" + bytes) and end ("exit N" / "signal N") come out; realm's
 * own builder then adds the sandbox's figures ("stats CPU PEAK OOM") before the socket closes.
 */
import { PassThrough, Writable } from 'node:stream';

export type RunEnd = { kind: 'exit' | 'signal'; n: number };

/** The sandbox's figures as its builder reported them once PID 1 was gone (raw units). */
export type RunStats = { cpu: number; peak: number; oom: number };

export class RunChannel {
  readonly stdout = new PassThrough();
  readonly stderr = new PassThrough();
  /** What came before "ready", or an "error" line after it: the reason a run could not start. */
  text = '';
  ready = false;
  end: RunEnd | undefined;
  stats: RunStats | undefined;
  private pending: Buffer = Buffer.alloc(0);
  private readonly waiters: {
    ready: (() => void)[];
    end: ((e: RunEnd | undefined) => void)[];
    figures: (() => void)[];
  } = { ready: [], end: [], figures: [] };
  private closed = false;

  /** Resolves on "ready"; never if the sandbox died first (watch its exit). */
  whenReady(): Promise<void> {
    return this.ready ? Promise.resolve() : new Promise((r) => this.waiters.ready.push(r));
  }

  /** The program's end as reported, or undefined if the socket closed without one (the sandbox was killed). */
  whenEnded(): Promise<RunEnd | undefined> {
    return this.end || this.closed ? Promise.resolve(this.end) : new Promise((r) => this.waiters.end.push(r));
  }

  /**
   * Resolves once the builder's figures came (it sends them once PID 1, and with it every process
   * of the sandbox, is gone), or the socket closed without them. What follows them is the
   * builder's own exit (the namespaces' teardown): the run's clean-up waits for that, its answer
   * does not.
   */
  whenFigures(): Promise<void> {
    return this.stats || this.closed ? Promise.resolve() : new Promise((r) => this.waiters.figures.push(r));
  }

  /**
   * Take bytes from the socket. False when the program's stdout or stderr is full (its reader is
   * slow): stop reading the socket until `drained()`, so the program waits instead of the daemon
   * keeping its output.
   */
  feed(chunk: Buffer): boolean {
    this.take(chunk);
    return !this.stdout.writableNeedDrain && !this.stderr.writableNeedDrain;
  }

  /** Resolves once neither output stream is full (or it was closed). */
  async drained(): Promise<void> {
    for (const s of [this.stdout, this.stderr]) {
      if (s.writableNeedDrain && !s.destroyed) {
        await new Promise<void>((r) => {
          const done = (): void => {
            s.off('drain', done);
            s.off('close', done);
            r();
          };
          s.on('drain', done);
          s.on('close', done);
        });
      }
    }
  }

  private take(chunk: Buffer): void {
    if (this.closed) return;
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    if (!this.ready) {
      const head = buf.toString('latin1', 0, Math.min(buf.length, 6));
      if (buf.length < 6 && 'ready\n'.startsWith(head)) {
        this.pending = Buffer.from(buf);
        return;
      }
      if (head !== 'ready\n') {
        // A builder's message, not the protocol: keep it for the error.
        this.text += buf.toString('utf8');
        this.pending = Buffer.alloc(0);
        return;
      }
      off = 6;
      this.ready = true;
      for (const w of this.waiters.ready.splice(0)) w();
    }
    while (off < buf.length) {
      const nl = buf.indexOf(10, off);
      if (nl < 0) break;
      const head = buf.subarray(off, nl).toString('latin1');
      const tag = head[0];
      if ((tag === 'o' || tag === 'e') && head[1] === ' ') {
        const len = Number(head.slice(2));
        if (buf.length < nl + 1 + len) break; // the rest of this record is still to come
        const data = buf.subarray(nl + 1, nl + 1 + len);
        if (!this.end) (tag === 'o' ? this.stdout : this.stderr).write(data);
        off = nl + 1 + len;
        continue;
      }
      off = nl + 1;
      const m = /^(exit|signal) (\d+)$/.exec(head);
      const st = /^stats (-?\d+) (-?\d+) (-?\d+)$/.exec(head);
      if (m && !this.end) this.ended({ kind: m[1] as RunEnd['kind'], n: Number(m[2]) });
      else if (st && !this.stats) {
        this.stats = { cpu: Number(st[1]), peak: Number(st[2]), oom: Number(st[3]) };
        for (const w of this.waiters.figures.splice(0)) w();
      } else this.text += `${head}\n`;
    }
    buf = buf.subarray(off);
    this.pending = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
  }

  /** The socket closed (PID 1 is gone): whatever did not come will not. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.end) this.ended(undefined);
    for (const w of this.waiters.figures.splice(0)) w();
  }

  /**
   * The program's stdin as a stream whose end sends the request: `records` (files, environment,
   * command), then the stdin bytes, then go.
   */
  requestWriter(send: (data: Buffer) => void, records: Buffer[]): Writable {
    const input: Buffer[] = [];
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        input.push(chunk);
        cb();
      },
      final(cb) {
        const bytes = Buffer.concat(input);
        send(Buffer.concat([...records, ...record('I', bytes), ...record('X', '')]));
        cb();
      },
    });
  }

  /**
   * The stdin of a program started ahead, as a stream: each chunk goes as it comes (an 'I' record;
   * the next is taken once the socket took it), its end as 'X' with the socket's end.
   */
  streamWriter(write: (data: Buffer, done: () => void) => void, end: (data: Buffer) => void): Writable {
    return new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (!chunk.length) return cb();
        write(Buffer.concat(record('I', chunk)), () => cb());
      },
      final(cb) {
        end(Buffer.concat(record('X', '')));
        cb();
      },
    });
  }

  /** The program ended (or never will be heard of): its output is complete. */
  private ended(end: RunEnd | undefined): void {
    this.end = end;
    this.stdout.end();
    this.stderr.end();
    for (const w of this.waiters.end.splice(0)) w(end);
  }
}

/** One request record: "<tag> <length>\n" and the bytes. */
export function record(tag: string, data: string | Buffer): Buffer[] {
  const b = typeof data === 'string' ? Buffer.from(data) : data;
  return [Buffer.from(`${tag} ${b.length}\n`), b];
}
