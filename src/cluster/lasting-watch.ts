/**
 * A watch of etcd that outlives its end. etcd ends a watch for good when the history it was to
 * resume from is compacted (a node cut off for long, while etcd's auto-compaction ran): etcd3 then
 * says `error` and never makes it again, so whatever followed it (a node's assignments, its view
 * of the members, the scheduler's wake-ups) would go deaf for the rest of the daemon's life. Here,
 * once a watch ends, `resync` reads afresh what its owner may have missed and says the revision it
 * read at; the watch is made again from the revision after it, its handlers wired anew. So no
 * event older than that read comes after it (a removal seen late would undo a newer record), and
 * none newer is lost. A resync that reads nothing (a wake-up) gives no revision: watched from now.
 *
 * Usage: `const w = new LastingWatch('the nodes', () => etcd.watch().prefix(P), (w) =>
 * w.on('data', …), () => refresh()); await w.start(); … await w.close();`
 */
import type { WatchBuilder, Watcher } from 'etcd3';
import { log } from '../logs/log.js';
import { errorMessage } from '../util/errors.js';
import { answered, cancelWatch } from './etcd.js';

/** How long to wait before trying again to watch, while etcd does not answer. */
const RETRY_MS = 1000;
/** How long etcd has to answer one call. */
const CALL_MS = 3000;
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, RETRY_MS));

export class LastingWatch {
  private watcher: Watcher | undefined;
  private closed = false;

  /**
   * @param what what is watched, for the log ("the nodes")
   * @param watch what to watch (a builder: `etcd.watch().prefix(P)`)
   * @param attach wires the handlers of one watch
   * @param resync after a watch ended: read what may have been missed; the revision read at, if any
   */
  constructor(
    private readonly what: string,
    private readonly watch: () => WatchBuilder,
    private readonly attach: (w: Watcher) => void,
    private readonly resync: () => Promise<string | void> | string | void,
  ) {}

  /** A watch from `after`'s next revision, or from now. */
  private make(after?: string): Promise<Watcher> {
    const b = this.watch();
    if (after) b.startRevision(String(BigInt(after) + 1n));
    return answered(b.create(), CALL_MS, `watching ${this.what}`);
  }

  /**
   * Watch from now; from the revision after `from` (a revision the owner read at); or follow
   * `from`, a watch made already.
   */
  async start(from?: Watcher | string): Promise<void> {
    this.wire(from !== undefined && typeof from !== 'string' ? from : await this.make(from));
  }

  private wire(w: Watcher): void {
    this.watcher = w;
    this.attach(w);
    w.on('error', (e: unknown) => void this.again(w, e));
  }

  private async again(ended: Watcher, why: unknown): Promise<void> {
    if (this.closed || this.watcher !== ended) return;
    this.watcher = undefined;
    log.warn(`cluster: the watch of ${this.what} ended (${errorMessage(why)}); watching again and reading what was missed`);
    // Not cancelled: etcd has ended it already, and etcd3 throws (from its stream, taking the
    // daemon down) at etcd's answer to cancelling a watch it no longer knows.
    while (!this.closed) {
      try {
        const w = await this.make((await this.resync()) ?? undefined);
        if (this.closed) return void (await cancelWatch(w));
        this.wire(w);
        log.info(`cluster: watching ${this.what} again`);
        return;
      } catch (e) {
        log.debug(`cluster: watching ${this.what} again: ${errorMessage(e)}`);
        await pause();
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await cancelWatch(this.watcher);
  }
}
