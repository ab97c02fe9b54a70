/**
 * The node's queue of runs waiting for a slot: bounded (past the bound a submission is refused
 * with CAPACITY_EXCEEDED and a Retry-After), visible (each waiting run has a position), and fair
 * across submitters — slots go round-robin over owners, oldest first within each — so one owner
 * submitting a thousand runs does not starve another's one.
 *
 * @example
 * const q = new FairQueue(100); q.push('run-1', 'uid:1000'); q.next(); // 'run-1'
 */
import { RealmError } from '../util/errors.js';

export class FairQueue {
  /** Waiting runs per owner, oldest first; owners in the order their turn comes. */
  private readonly byOwner = new Map<string, string[]>();
  private size = 0;

  constructor(private readonly bound: number) {}

  get length(): number {
    return this.size;
  }

  /** Queue a run; CAPACITY_EXCEEDED when the queue is full. */
  push(run: string, owner: string, retryAfterSeconds = 30): void {
    if (this.size >= this.bound)
      throw new RealmError(
        'CAPACITY_EXCEEDED',
        `the job queue is full (${this.bound} runs waiting); try again later, or cancel queued runs`,
        { retryAfter: retryAfterSeconds },
      );
    this.requeue(run, owner);
  }

  /** Queue a run whatever the bound (one already accepted: a retry, a run recovered at start). */
  requeue(run: string, owner: string): void {
    const list = this.byOwner.get(owner);
    if (list) list.push(run);
    else this.byOwner.set(owner, [run]);
    this.size++;
  }

  /** The next run to start (its owner goes to the back of the line), or undefined. */
  next(): string | undefined {
    for (const [owner, list] of this.byOwner) {
      const run = list.shift();
      this.byOwner.delete(owner);
      if (list.length) this.byOwner.set(owner, list);
      if (run !== undefined) {
        this.size--;
        return run;
      }
    }
    return undefined;
  }

  remove(run: string): boolean {
    for (const [owner, list] of this.byOwner) {
      const i = list.indexOf(run);
      if (i < 0) continue;
      list.splice(i, 1);
      if (!list.length) this.byOwner.delete(owner);
      this.size--;
      return true;
    }
    return false;
  }

  /** 1-based: how many runs start before this one (taking turns as `next` does), plus one. */
  position(run: string): number | undefined {
    const lists = [...this.byOwner.values()].map((l) => [...l]);
    let pos = 0;
    while (lists.some((l) => l.length)) {
      for (const l of lists) {
        const r = l.shift();
        if (r === undefined) continue;
        pos++;
        if (r === run) return pos;
      }
    }
    return undefined;
  }
}
