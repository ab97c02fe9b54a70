/**
 * Warm pools: sandboxes built ahead of demand, per shape (image, network, sizes), so a request
 * never waits for set-up. An item is handed out once and never returns to the pool; the pool
 * refills in the background. Shapes not asked for in a while are drained.
 */
import { errorMessage } from '../util/errors.js';

const REFILL_DELAY_MS = 25;

export interface PoolItem {
  readonly id: string;
  alive(): boolean;
  discard(): Promise<void>;
}

interface Shape<T extends PoolItem> {
  key: string;
  ready: T[];
  building: number;
  make: () => Promise<T>;
  lastUsed: number;
  /** After a failed build, no retry before this time. */
  retryAt: number;
  /** A refill is scheduled. */
  scheduled: boolean;
}


export class WarmPool<T extends PoolItem> {
  private readonly shapes = new Map<string, Shape<T>>();
  private closed = false;
  private readonly drainer: NodeJS.Timeout;

  /**
   * @param size items kept ready per shape (0 turns the pool off)
   * @param idleMs a shape not asked for in this long is drained
   */
  constructor(
    private readonly size: number,
    private readonly idleMs = 10 * 60_000,
  ) {
    this.drainer = setInterval(() => void this.drainIdle(), Math.min(idleMs, 60_000));
    this.drainer.unref();
  }

  /** Keep `size` items of this shape ready from now on. */
  warm(key: string, make: () => Promise<T>): void {
    if (this.size <= 0 || this.closed) return;
    let shape = this.shapes.get(key);
    if (!shape) {
      shape = { key, ready: [], building: 0, make, lastUsed: Date.now(), retryAt: 0, scheduled: false };
      this.shapes.set(key, shape);
    }
    this.fill(shape);
  }

  /** A ready item of this shape, or undefined (the caller builds one cold); refills either way. */
  take(key: string, make: () => Promise<T>): T | undefined {
    if (this.size <= 0 || this.closed) return undefined;
    this.warm(key, make);
    const shape = this.shapes.get(key);
    if (!shape) return undefined;
    shape.lastUsed = Date.now();
    let item: T | undefined;
    while ((item = shape.ready.shift())) {
      if (item.alive()) break;
      void item.discard().catch(() => undefined);
    }
    // Refill a little later: building forks the daemon and competes for the same CPUs as the
    // work the caller is about to start (a create is usually followed at once by an exec).
    if (!shape.scheduled) {
      shape.scheduled = true;
      setTimeout(() => {
        shape.scheduled = false;
        this.fill(shape);
      }, REFILL_DELAY_MS).unref();
    }
    return item;
  }

  /** What is ready now. */
  items(): T[] {
    return [...this.shapes.values()].flatMap((s) => s.ready);
  }

  /** Resolves when no build is under way or about to start. */
  async settled(): Promise<void> {
    while ([...this.shapes.values()].some((s) => s.building > 0 || (s.scheduled && !this.closed))) await new Promise((r) => setTimeout(r, 10));
  }

  /** Build one item at a time until the shape has `size`; a failure pauses the shape for 5 s. */
  private fill(shape: Shape<T>): void {
    if (this.closed || shape.building > 0 || shape.ready.length >= this.size || Date.now() < shape.retryAt) return;
    shape.building++;
    shape
      .make()
      .then((item) => {
        if (this.closed || this.shapes.get(shape.key) !== shape) void item.discard().catch(() => undefined);
        else shape.ready.push(item);
      })
      .catch((e: unknown) => {
        shape.retryAt = Date.now() + 5000;
        console.error(`realm: warming a sandbox failed (retrying in 5s): ${errorMessage(e)}`);
      })
      .finally(() => {
        shape.building--;
        this.fill(shape);
      });
  }

  private async drainIdle(): Promise<void> {
    const now = Date.now();
    for (const [key, shape] of this.shapes) {
      if (now - shape.lastUsed < this.idleMs) continue;
      this.shapes.delete(key);
      await Promise.allSettled(shape.ready.splice(0).map((i) => i.discard()));
    }
  }

  /** Forget the shapes whose key matches and discard their ready items (e.g. an image was replaced). */
  async drop(match: (key: string) => boolean): Promise<void> {
    const gone = [...this.shapes.values()].filter((s) => match(s.key));
    // Builds under way notice their shape is gone and discard what they made (see fill).
    for (const s of gone) this.shapes.delete(s.key);
    await Promise.allSettled(gone.flatMap((s) => s.ready.splice(0)).map((i) => i.discard()));
  }

  /** Discard everything and stop refilling; waits for builds under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.drainer);
    await this.settled();
    const all = [...this.shapes.values()].flatMap((s) => s.ready.splice(0));
    this.shapes.clear();
    await Promise.allSettled(all.map((i) => i.discard()));
  }
}
