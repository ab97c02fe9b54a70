/**
 * Warm pools: sandboxes built ahead of demand, per shape (image, network, sizes), so a request
 * never waits for set-up. An item is handed out once and never returns to the pool; the pool
 * refills in the background. Shapes not asked for in a while are drained.
 *
 * Sized by config and by demand: each shape keeps `size` ready to start with; a request that
 * finds none ready raises that shape's target by one (up to `max`), and a minute without such a
 * miss lowers it by one again (never below `size`).
 */
import { background } from '../telemetry/trace.js';
import { errorMessage } from '../util/errors.js';
import { log } from '../logs/log.js';

const REFILL_DELAY_MS = 25;
/** A shape's target drops by one after this long without a request that found nothing ready. */
const SHRINK_AFTER_MS = 60_000;

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
  /** Items this shape keeps ready now: between the pool's size and max, raised by misses. */
  target: number;
  /** Last time the target changed or a request found nothing ready. */
  lastMiss: number;
  /** After a failed build, no retry before this time. */
  retryAt: number;
  /** A refill is scheduled. */
  scheduled: boolean;
}

export class WarmPool<T extends PoolItem> {
  private readonly shapes = new Map<string, Shape<T>>();
  private closed = false;
  private readonly drainer: NodeJS.Timeout;
  /** Discards under way: close() waits for them, so nothing of a pool outlives it. */
  private readonly discarding = new Set<Promise<void>>();

  /**
   * @param size items kept ready per shape to start with (0 turns the pool off)
   * @param idleMs a shape not asked for in this long is drained
   * @param max most items a busy shape keeps ready (at least `size`)
   * @param shrinkMs a shape's target drops by one after this long without a miss
   */
  constructor(
    private readonly size: number,
    private readonly idleMs = 10 * 60_000,
    private readonly max = size * 4,
    private readonly shrinkMs = SHRINK_AFTER_MS,
  ) {
    this.drainer = setInterval(() => void this.drainIdle(), Math.min(idleMs, 60_000));
    this.drainer.unref();
  }

  /** Keep `size` items of this shape ready from now on. */
  warm(key: string, make: () => Promise<T>): void {
    if (this.size <= 0 || this.closed) return;
    let shape = this.shapes.get(key);
    if (!shape) {
      shape = {
        key,
        ready: [],
        building: 0,
        make,
        lastUsed: Date.now(),
        target: this.size,
        lastMiss: Date.now(),
        retryAt: 0,
        scheduled: false,
      };
      this.shapes.set(key, shape);
    }
    this.fill(shape);
  }

  /** A ready item of this shape, or undefined (the caller builds one cold); refills either way. */
  take(key: string, make: () => Promise<T>): T | undefined {
    if (this.size <= 0 || this.closed) return undefined;
    // A shape's first request is not a miss: nothing was asked of it before.
    const known = this.shapes.has(key);
    this.warm(key, make);
    const shape = this.shapes.get(key);
    if (!shape) return undefined;
    const now = Date.now();
    shape.lastUsed = now;
    let item: T | undefined;
    while ((item = shape.ready.shift())) {
      if (item.alive()) break;
      this.discard(item);
    }
    if (!item && known) {
      shape.target = Math.min(Math.max(this.max, this.size), shape.target + 1);
      shape.lastMiss = now;
    } else if (now - shape.lastMiss >= this.shrinkMs && shape.target > this.size) {
      shape.target--;
      shape.lastMiss = now;
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

  /** Items each shape keeps ready now, by key. */
  targets(): Map<string, number> {
    return new Map([...this.shapes].map(([k, s]) => [k, s.target]));
  }

  /** What is ready now. */
  items(): T[] {
    return [...this.shapes.values()].flatMap((s) => s.ready);
  }

  /** Resolves when no build is under way or about to start. */
  async settled(): Promise<void> {
    while ([...this.shapes.values()].some((s) => s.building > 0 || (s.scheduled && !this.closed)))
      await new Promise((r) => setTimeout(r, 10));
  }

  /** Build one item at a time until the shape has its target; a failure pauses the shape for 5 s. */
  private fill(shape: Shape<T>): void {
    if (this.closed || shape.building > 0 || shape.ready.length >= shape.target || Date.now() < shape.retryAt) return;
    shape.building++;
    background('warm.build', {}, () => shape.make())
      .then((item) => {
        if (this.closed || this.shapes.get(shape.key) !== shape) this.discard(item);
        else shape.ready.push(item);
      })
      .catch((e: unknown) => {
        shape.retryAt = Date.now() + 5000;
        log.warn(`warming a sandbox failed (retrying in 5s): ${errorMessage(e)}`);
      })
      .finally(() => {
        shape.building--;
        this.fill(shape);
      });
  }

  private discard(item: T): void {
    const p = item
      .discard()
      .catch(() => undefined)
      .finally(() => this.discarding.delete(p));
    this.discarding.add(p);
  }

  private async drainIdle(): Promise<void> {
    const now = Date.now();
    for (const [key, shape] of this.shapes) {
      if (now - shape.lastUsed < this.idleMs) continue;
      this.shapes.delete(key);
      await Promise.allSettled(shape.ready.splice(0).map((i) => i.discard()));
    }
  }

  /** Forget the shapes whose key matches and discard what they hold (their image is going away). */
  async drop(match: (key: string) => boolean): Promise<void> {
    const items: T[] = [];
    for (const [key, shape] of this.shapes) {
      if (!match(key)) continue;
      this.shapes.delete(key);
      items.push(...shape.ready.splice(0));
    }
    await Promise.allSettled(items.map((i) => i.discard()));
  }

  /** Discard everything and stop refilling; waits for builds under way. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.drainer);
    await this.settled();
    const all = [...this.shapes.values()].flatMap((s) => s.ready.splice(0));
    this.shapes.clear();
    for (const i of all) this.discard(i);
    while (this.discarding.size) await Promise.allSettled([...this.discarding]);
  }
}
