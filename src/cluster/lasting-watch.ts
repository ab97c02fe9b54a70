/**
 * A watch of etcd that outlives its end. etcd ends a watch for good when the history it was to
 * resume from is compacted (a node cut off for long, while etcd's auto-compaction ran): etcd3 then
 * says `error` and never makes it again, so whatever followed it (a node's assignments, its view
 * of the members, the scheduler's wake-ups) would go deaf for the rest of the daemon's life. Here a
 * watch that ends is made again from now, its handlers wired anew, and `resync` is told, so its
 * owner reads afresh what it may have missed (the changes made between the end and the new watch
 * included: the new watch is made first).
 *
 * Usage: `const w = new LastingWatch('the nodes', () => etcd.watch().prefix(P).create(), (w) =>
 * w.on('data', …), () => refresh()); await w.start(); … await w.close();`
 */
import type { Watcher } from 'etcd3';
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
   * @param make makes the watch (from now)
   * @param attach wires the handlers of one watch
   * @param resync told after a watch that ended was made again: read what may have been missed
   */
  constructor(
    private readonly what: string,
    private readonly make: () => Promise<Watcher>,
    private readonly attach: (w: Watcher) => void,
    private readonly resync: () => Promise<void> | void,
  ) {}

  /** Watch (or follow `first`, a watch made already: from the revision after a read, say). */
  async start(first?: Watcher): Promise<void> {
    this.wire(first ?? (await answered(this.make(), CALL_MS, `watching ${this.what}`)));
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
    while (!this.closed && !this.watcher) {
      try {
        const w = await answered(this.make(), CALL_MS, `watching ${this.what}`);
        if (this.closed) return void (await cancelWatch(w));
        this.wire(w);
      } catch (e) {
        log.debug(`cluster: watching ${this.what} again: ${errorMessage(e)}`);
        await pause();
      }
    }
    // Then what was missed, read until etcd answers (the new watch already brings what changes).
    while (!this.closed) {
      try {
        await this.resync();
        log.info(`cluster: watching ${this.what} again`);
        return;
      } catch (e) {
        log.debug(`cluster: reading ${this.what} again: ${errorMessage(e)}`);
        await pause();
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await cancelWatch(this.watcher);
  }
}
