/**
 * What the node holds: live sandboxes (one-shot runs included) against --max-sandboxes, and the
 * clean-ups still under way (a one-shot sandbox is removed after its caller has the answer).
 */
import { RealmError, errorMessage } from '../util/errors.js';
import { newId } from './ids.js';
import { log } from '../logs/log.js';

export class Capacity {
  private readonly live = new Set<string>();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.live.size;
  }

  /** CAPACITY_EXCEEDED when the node is full. */
  check(): void {
    if (this.live.size >= this.max) {
      throw new RealmError(
        'CAPACITY_EXCEEDED',
        `this node already runs ${this.live.size} sandboxes (limit ${this.max}); destroy some, wait for runs to finish, or raise --max-sandboxes`,
      );
    }
  }

  /** A new id, counted against capacity before its sandbox exists. */
  reserve(prefix: 'sb' | 'run'): string {
    this.check();
    const id = newId(prefix);
    this.live.add(id);
    return id;
  }

  add(id: string): void {
    this.live.add(id);
  }

  release(id: string): void {
    this.live.delete(id);
  }

  /**
   * Run a clean-up in the background; the sandbox counts until it is done. It starts after this
   * turn of the event loop: what the caller answers (a run's result) goes out first.
   */
  cleanUp(id: string, fn: () => Promise<void>): void {
    const done: Promise<void> = new Promise<void>((r) => setImmediate(r))
      .then(fn)
      .catch((e: unknown) => log.error(`cleaning up ${id} failed: ${errorMessage(e)}`, { sandboxId: id, err: e }))
      .finally(() => {
        this.live.delete(id);
        this.pending.delete(done);
      });
    this.pending.add(done);
  }

  /** Resolves when no clean-up is under way. */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }
}
