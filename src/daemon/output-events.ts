/**
 * Program output on its way to one slow or fast client, as events in arrival order. Chunks that
 * come while the client is still taking the last event are coalesced (1-byte writes become one
 * event, not one event per byte), and past HIGH_WATER bytes waiting the source is told to wait,
 * so a client that does not read costs the daemon at most that much.
 */
import { StringDecoder } from 'node:string_decoder';
import { ByteLog, PIECE_BYTES } from '../engine/output.js';

/** Bytes of output waiting for one client before its source is held back (resumed under half). */
export const HIGH_WATER = 1024 * 1024;

type Stream = 'stdout' | 'stderr';
/** Output bytes of one stream, or a closing event (after which the decoders' rest goes first). */
type Item = { stream: Stream; bytes: ByteLog } | Message;

/** One SSE message. */
export interface Message {
  event?: string;
  data: string;
}

/** realm's own output events: `stdout`/`stderr` with `{ data }`. */
const realmFormat = (stream: Stream, text: string): Message => ({ event: stream, data: JSON.stringify({ data: text }) });

export class OutputEvents {
  private readonly items: Item[] = [];
  private waiting = 0;
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private writing: Promise<void> | undefined;
  private waiters: (() => void)[] = [];
  private closed = false;

  /** `write` sends one message and resolves once the client has room for the next; `format` makes output text a message. */
  constructor(
    private readonly write: (msg: Message) => Promise<void>,
    private readonly format: (stream: Stream, text: string) => Message = realmFormat,
  ) {}

  /** Queue output; a returned promise settles once the client caught up enough for more. */
  output(stream: Stream, chunk: Buffer): void | Promise<void> {
    if (this.closed) return;
    const last = this.items.at(-1);
    let item = last && 'bytes' in last && last.stream === stream && last.bytes.length < PIECE_BYTES ? last : undefined;
    if (!item) this.items.push((item = { stream, bytes: new ByteLog() }));
    item.bytes.append(chunk);
    this.waiting += chunk.length;
    this.pump();
    if (this.waiting > HIGH_WATER) return new Promise((r) => this.waiters.push(r));
  }

  /** Queue a message after the output so far (`exit`, `error`): the output's decoders end first. */
  event(msg: Message): void {
    if (this.closed) return;
    this.items.push(msg);
    this.pump();
  }

  /** Resolves once everything queued was sent (or the client is gone). */
  async flushed(): Promise<void> {
    while (this.writing) await this.writing;
  }

  /** The client is gone: drop what waits and let the source go on (it is being killed). */
  close(): void {
    this.closed = true;
    this.items.length = 0;
    this.waiting = 0;
    this.release();
  }

  private pump(): void {
    if (this.writing) return;
    this.writing = (async () => {
      for (let item = this.items.shift(); item && !this.closed; item = this.items.shift()) {
        if ('bytes' in item) {
          const text = this.decoders[item.stream].write(item.bytes.bytes());
          this.waiting -= item.bytes.length;
          item.bytes.release();
          if (this.waiting <= HIGH_WATER / 2) this.release();
          if (text) await this.write(this.format(item.stream, text));
        } else {
          for (const stream of ['stdout', 'stderr'] as const) {
            const rest = this.decoders[stream].end();
            if (rest) await this.write(this.format(stream, rest));
          }
          await this.write(item);
        }
      }
    })()
      .catch(() => this.close())
      .finally(() => {
        this.writing = undefined;
        if (this.items.length && !this.closed) this.pump();
      });
  }

  private release(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}
