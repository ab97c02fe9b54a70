/**
 * Where the daemon keeps program output. A program writing one byte per write hands the daemon
 * millions of 1-byte reads; kept as they come (one Buffer each, ~200 bytes of bookkeeping per
 * byte) four such execs took a gigabyte that never came back. Output is therefore copied into a
 * few large pieces, and every piece is charged to one daemon-wide budget.
 */
import { totalmem } from 'node:os';

/** Largest piece; a long output is a list of these. */
export const PIECE_BYTES = 64 * 1024;
/** First allocation of a piece (it doubles up to PIECE_BYTES): most outputs are short. */
const FIRST_BYTES = 1024;

/**
 * The daemon-wide budget of output held in memory: what execs and runs collect, and what
 * background processes keep for reconnects. An exec that would pass it ends with verdict
 * `output-limit`; a background process keeps less of its past.
 */
export class OutputBudget {
  private used = 0;
  constructor(readonly limit: number) {}

  /** Take `n` bytes; false (and nothing taken) if that would pass the limit. */
  take(n: number): boolean {
    if (this.used + n > this.limit) return false;
    this.used += n;
    return true;
  }

  give(n: number): void {
    this.used = Math.max(0, this.used - n);
  }
}

/** The budget's size: the engine's setting, else REALM_OUTPUT_BUDGET (bytes), else a quarter of RAM up to 2 GiB. */
export function outputBudgetBytes(configured?: number): number {
  if (configured && configured > 0) return configured;
  const env = Number(process.env.REALM_OUTPUT_BUDGET);
  if (Number.isFinite(env) && env > 0) return env;
  return Math.max(256 * 1024 ** 2, Math.min(2 * 1024 ** 3, Math.floor(totalmem() / 4)));
}

/**
 * Bytes appended in any sizes, held as few pieces of at most PIECE_BYTES. With a budget, every
 * allocation is charged to it and `append` stops where the budget says no.
 */
export class ByteLog {
  private pieces: Buffer[] = [];
  private tail: Buffer | null = null;
  private tailLen = 0;
  /** Bytes held. */
  length = 0;
  /** Bytes allocated (what the budget was charged). */
  private charged = 0;

  constructor(private readonly budget?: OutputBudget) {}

  /** Append what fits; returns how many bytes of `chunk` were kept. */
  append(chunk: Buffer): number {
    let done = 0;
    while (done < chunk.length) {
      if (!this.tail || this.tailLen === this.tail.length) {
        if (!this.grow(chunk.length - done)) break;
      }
      const tail = this.tail!;
      const n = chunk.copy(tail, this.tailLen, done);
      this.tailLen += n;
      done += n;
    }
    this.length += done;
    return done;
  }

  /** A bigger tail: doubled while small, else a new full piece. False if the budget refuses. */
  private grow(want: number): boolean {
    const tail = this.tail;
    if (tail && tail.length < PIECE_BYTES) {
      const size = Math.min(PIECE_BYTES, Math.max(tail.length * 2, this.tailLen + want));
      if (!this.charge(size - tail.length)) return false;
      const bigger = Buffer.allocUnsafeSlow(size);
      tail.copy(bigger, 0, 0, this.tailLen);
      this.tail = bigger;
      return true;
    }
    // Once one piece is full the output is long: go straight to full pieces.
    const size = tail ? PIECE_BYTES : Math.min(PIECE_BYTES, Math.max(FIRST_BYTES, want));
    if (!this.charge(size)) return false;
    if (tail) this.pieces.push(tail);
    this.tail = Buffer.allocUnsafeSlow(size);
    this.tailLen = 0;
    return true;
  }

  private charge(n: number): boolean {
    if (this.budget && !this.budget.take(n)) return false;
    this.charged += n;
    return true;
  }

  /** All bytes, as one Buffer. */
  bytes(): Buffer {
    const all = this.tail ? [...this.pieces, this.tail.subarray(0, this.tailLen)] : this.pieces;
    return all.length === 1 ? Buffer.from(all[0]) : Buffer.concat(all, this.length);
  }

  /** Let go of the bytes and give back what they were charged. */
  release(): void {
    this.pieces = [];
    this.tail = null;
    this.tailLen = 0;
    this.length = 0;
    this.budget?.give(this.charged);
    this.charged = 0;
  }
}

/**
 * How many leading bytes of `b` end on a whole UTF-8 character (so text cut there splits none).
 * At most 3 bytes are held back.
 */
export function utf8Whole(b: Buffer): number {
  const end = b.length;
  for (let i = end - 1; i >= 0 && i >= end - 3; i--) {
    const x = b[i];
    if ((x & 0xc0) === 0x80) continue; // a continuation byte: look further back
    const need = x >= 0xf0 ? 4 : x >= 0xe0 ? 3 : x >= 0xc0 ? 2 : 1;
    return end - i >= need ? end : i;
  }
  return end;
}
