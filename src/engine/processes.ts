/**
 * Background processes: commands started detached in a sandbox whose output the daemon keeps
 * (the last 1 MiB of each stream, in pieces charged to the daemon's output budget) so a client
 * can leave and reconnect, write to their stdin, signal or kill them. They live in the daemon's memory: after a daemon restart they are no
 * longer attached (the sandbox's destroy still ends them).
 */
import { finished } from 'node:stream/promises';
import type { DriverProcess, ExitInfo } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';
import { newId } from './ids.js';
import { type OutputBudget, PIECE_BYTES, utf8Whole } from './output.js';

/** Output kept per stream, per process. */
const KEEP_BYTES = 1024 * 1024;
/**
 * Most runs kept per process. Output is kept as runs of one stream (coalesced up to PIECE_BYTES)
 * in arrival order; stdout and stderr interleaving in tiny writes would otherwise make a run per
 * write. Past this, the oldest go.
 */
const MAX_SEGMENTS = 1024;
/**
 * Most an exit waits for the rest of its output: the exit can be told before the last bytes are
 * read from the pipes (a follower would get the exit and miss them), and a child left running
 * with the pipes open must not hold the exit back for long.
 */
const DRAIN_MS = 250;

/** A piece of a process's output, as a follower is given it: whole UTF-8 characters. */
export interface OutputChunk {
  stream: 'stdout' | 'stderr';
  text: string;
  /** Position of this chunk in the stream (bytes before it). */
  offset: number;
}

export interface ProcessInfo {
  id: string;
  sandbox: string;
  command: string[];
  status: 'running' | 'exited';
  startedAt: string;
  /** On a pseudo-terminal. */
  tty: boolean;
  exit: ExitInfo | null;
}

/** Where a follower of a process's output sends it. */
export interface OutputSink {
  /** Called with each chunk in order; a returned promise holds the next until it settles (back-pressure). */
  chunk(c: OutputChunk): void | Promise<void>;
  /** Called once, after the last chunk: with the exit, or null (not following, still running; or forgotten). */
  end(exit: ExitInfo | null): void;
}

/** A run of bytes of one stream, as they arrived. */
interface Segment {
  seq: number;
  stream: 'stdout' | 'stderr';
  /** Position of its first byte in the stream. */
  offset: number;
  buf: Buffer;
  len: number;
}

class Bg {
  /** Kept output, in arrival order (seq ascending). */
  private segments: Segment[] = [];
  private seq = 0;
  private kept = { stdout: 0, stderr: 0 };
  private total = { stdout: 0, stderr: 0 };
  /** Bytes charged to the budget for the segments' buffers. */
  private charged = 0;
  /** Followers waiting for more output. */
  private wakers = new Set<() => void>();
  exit: ExitInfo | null = null;
  forgotten = false;
  /** Resolves once the exit is recorded (and followers told). */
  readonly ended: Promise<void>;

  constructor(
    readonly info: Omit<ProcessInfo, 'status' | 'exit'>,
    readonly proc: DriverProcess,
    private readonly budget: OutputBudget,
  ) {
    for (const stream of ['stdout', 'stderr'] as const) {
      proc[stream].on('data', (data: Buffer) => this.push(stream, data));
    }
    proc.stdin?.on('error', () => undefined);
    const drained = Promise.all([finished(proc.stdout), finished(proc.stderr)]).catch(() => undefined);
    this.ended = proc.wait().then(
      async (exit) => {
        await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_MS).unref())]);
        this.exit = exit;
        this.wake();
      },
      () => undefined,
    );
  }

  private push(stream: 'stdout' | 'stderr', data: Buffer): void {
    if (this.forgotten) return;
    let done = 0;
    while (done < data.length) {
      const seg = this.room(stream, data.length - done, this.total[stream] + done);
      if (!seg) break; // the budget is spent even with this process's past let go: drop it
      const n = data.copy(seg.buf, seg.len, done);
      seg.len += n;
      done += n;
    }
    this.total[stream] += data.length;
    this.kept[stream] += done;
    // The oldest runs of this stream go past the limit (and the oldest of all past the count).
    while (this.kept[stream] > KEEP_BYTES) {
      const i = this.segments.findIndex((s) => s.stream === stream);
      if (i < 0 || i === this.segments.length - 1) break;
      this.drop(i);
    }
    while (this.segments.length > MAX_SEGMENTS) this.drop(0);
    this.wake();
  }

  /** The segment to append `want` bytes of `stream` at stream position `offset` to, with room for one at least. */
  private room(stream: 'stdout' | 'stderr', want: number, offset: number): Segment | undefined {
    const last = this.segments.at(-1);
    // Only bytes that follow on (same stream, no gap) join the last run.
    const joins = last?.stream === stream && last.offset + last.len === offset;
    if (joins && last.len < last.buf.length) return last;
    if (joins && last.buf.length < PIECE_BYTES) {
      // A small run grows (doubling) before a new one starts.
      const size = Math.min(PIECE_BYTES, Math.max(last.buf.length * 2, last.len + want));
      if (!this.charge(size - last.buf.length)) return undefined;
      const bigger = Buffer.allocUnsafeSlow(size);
      last.buf.copy(bigger, 0, 0, last.len);
      last.buf = bigger;
      return last;
    }
    // A run that follows a full one of its stream is long output: a full piece at once.
    const size = joins ? PIECE_BYTES : Math.min(PIECE_BYTES, Math.max(256, want));
    if (!this.charge(size)) return undefined;
    const seg: Segment = { seq: this.seq++, stream, offset, buf: Buffer.allocUnsafeSlow(size), len: 0 };
    this.segments.push(seg);
    return seg;
  }

  /** Charge the budget; when it is spent, this process's own oldest output makes the room. */
  private charge(n: number): boolean {
    while (!this.budget.take(n)) {
      if (this.segments.length <= 1) return false;
      this.drop(0);
    }
    this.charged += n;
    return true;
  }

  private drop(i: number): void {
    const [old] = this.segments.splice(i, 1);
    if (!old) return;
    this.kept[old.stream] -= old.len;
    this.charged -= old.buf.length;
    this.budget.give(old.buf.length);
  }

  private wake(): void {
    const w = [...this.wakers];
    this.wakers.clear();
    for (const f of w) f();
  }

  /** Resolves on the next output, exit or forget. */
  changed(): Promise<void> {
    return new Promise((r) => this.wakers.add(r));
  }

  /**
   * The next bytes at or after `at` (a segment's seq and a position in it), at most `max`, and
   * where the reading goes on; undefined if nothing is there yet. A follower that fell behind
   * what is kept continues at the oldest kept byte (the offsets show the gap).
   */
  read(
    at: { seq: number; pos: number },
    max: number,
  ): { seg: Segment; bytes: Buffer; next: { seq: number; pos: number } } | undefined {
    // The first segment at or after `at.seq` (seqs ascend; a reader is mostly near the end).
    let lo = 0;
    let hi = this.segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.segments[mid].seq < at.seq) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.segments.length; i++) {
      const seg = this.segments[i];
      const pos = seg.seq === at.seq ? at.pos : 0;
      if (pos < seg.len) {
        const end = Math.min(seg.len, pos + max);
        return { seg, bytes: Buffer.from(seg.buf.subarray(pos, end)), next: { seq: seg.seq, pos: end } };
      }
    }
    return undefined;
  }

  /** Let go of the kept output (the process is forgotten) and end its followers. */
  forget(): void {
    this.forgotten = true;
    this.segments = [];
    this.budget.give(this.charged);
    this.charged = 0;
    this.wake();
  }

  view(): ProcessInfo {
    return { ...this.info, status: this.exit ? 'exited' : 'running', exit: this.exit };
  }
}

/**
 * Send `bg`'s output to `sink` from the oldest kept byte, one piece at a time, each only after
 * the sink took the last: a slow reader holds nothing but its place in the kept output, and
 * falls behind (skipping what was let go) instead of making the daemon queue for it.
 */
async function pump(bg: Bg, sink: OutputSink, live: boolean, stopped: () => boolean): Promise<void> {
  let at = { seq: 0, pos: 0 };
  // Bytes held back so no character is split across chunks, per stream, and where they start.
  const carry = { stdout: { bytes: Buffer.alloc(0), offset: 0 }, stderr: { bytes: Buffer.alloc(0), offset: 0 } };
  const emit = async (stream: 'stdout' | 'stderr', offset: number, bytes: Buffer, last: boolean): Promise<void> => {
    const c = carry[stream];
    // A gap (kept output let go, or bytes dropped) starts afresh.
    const joined = c.bytes.length && c.offset + c.bytes.length === offset ? Buffer.concat([c.bytes, bytes]) : bytes;
    const start = joined === bytes ? offset : c.offset;
    const whole = last ? joined.length : utf8Whole(joined);
    c.bytes = Buffer.from(joined.subarray(whole));
    c.offset = start + whole;
    if (whole > 0) await sink.chunk({ stream, text: joined.toString('utf8', 0, whole), offset: start });
  };
  for (;;) {
    if (stopped()) return;
    const got = bg.read(at, PIECE_BYTES);
    if (got) {
      at = got.next;
      await emit(got.seg.stream, got.seg.offset + got.next.pos - got.bytes.length, got.bytes, false);
      continue;
    }
    if (bg.exit || !live || bg.forgotten) {
      for (const stream of ['stdout', 'stderr'] as const) {
        if (carry[stream].bytes.length)
          await emit(stream, carry[stream].offset + carry[stream].bytes.length, Buffer.alloc(0), true);
      }
      if (!stopped()) sink.end(bg.forgotten ? null : bg.exit);
      return;
    }
    await bg.changed();
  }
}

export class Processes {
  private readonly bySandbox = new Map<string, Map<string, Bg>>();

  constructor(private readonly budget: OutputBudget) {}

  add(sandbox: string, command: string[], proc: DriverProcess, tty = false): ProcessInfo {
    const id = newId('p');
    const bg = new Bg({ id, sandbox, command, tty, startedAt: new Date().toISOString() }, proc, this.budget);
    let m = this.bySandbox.get(sandbox);
    if (!m) this.bySandbox.set(sandbox, (m = new Map<string, Bg>()));
    m.set(id, bg);
    return bg.view();
  }

  list(sandbox: string): ProcessInfo[] {
    return [...(this.bySandbox.get(sandbox)?.values() ?? [])].map((b) => b.view());
  }

  private get(sandbox: string, id: string): Bg {
    const b = this.bySandbox.get(sandbox)?.get(id);
    if (!b)
      throw new RealmError(
        'PROCESS_NOT_FOUND',
        `no process ${id} in sandbox ${sandbox}; list them with GET /v1/sandboxes/${sandbox}/processes`,
      );
    return b;
  }

  info(sandbox: string, id: string): ProcessInfo {
    return this.get(sandbox, id).view();
  }

  /**
   * Send the output kept so far, then follow it until the process ends (or only what is kept, if
   * not `live`); `sink.end` is called once at the end. Returns a stop function.
   */
  follow(sandbox: string, id: string, sink: OutputSink, live = true): () => void {
    const b = this.get(sandbox, id);
    let stopped = false;
    void pump(b, sink, live, () => stopped).catch(() => undefined);
    return () => void (stopped = true);
  }

  write(sandbox: string, id: string, data: string | Buffer, close = false): void {
    const b = this.get(sandbox, id);
    if (b.exit || !b.proc.stdin) throw new RealmError('PROCESS_NOT_RUNNING', `process ${id} has ended; its stdin is closed`);
    b.proc.stdin.write(data);
    if (close) b.proc.stdin.end();
  }

  resize(sandbox: string, id: string, rows: number, cols: number): void {
    this.get(sandbox, id).proc.resize?.(rows, cols);
  }

  signal(sandbox: string, id: string, signal: NodeJS.Signals): void {
    const b = this.get(sandbox, id);
    if (b.exit) throw new RealmError('PROCESS_NOT_RUNNING', `process ${id} has ended`);
    b.proc.signal(signal);
  }

  /** Kill the process and everything it started; returns once its exit is recorded. */
  async kill(sandbox: string, id: string): Promise<void> {
    const b = this.get(sandbox, id);
    if (b.exit) return;
    await b.proc.kill();
    await b.ended;
  }

  /** Forget a sandbox's processes (it is being destroyed). */
  forget(sandbox: string): void {
    for (const b of this.bySandbox.get(sandbox)?.values() ?? []) b.forget();
    this.bySandbox.delete(sandbox);
  }
}
