/**
 * The daemon's event bus: what happened to sandboxes, runs, jobs, apps and nodes, in order, for
 * `GET /v1/events`. Emitting is cheap and synchronous (a push into a bounded ring and a call to
 * each listener); whoever streams the events keeps its own bounded queue (see daemon/events-stream.ts).
 *
 *   const bus = new EventBus();
 *   const off = bus.subscribe((e) => console.log(e.id, e.type));
 *   bus.emit({ type: 'sandbox.created', owner: 'uid:1000', ids: { sandbox: 'sb-…' } });
 *   off();
 */

import { randomBytes } from 'node:crypto';

/** The ids an event is about. */
export interface EventIds {
  sandbox?: string;
  run?: string;
  job?: string;
  node?: string;
  app?: string;
  /** A process service (its replica's sandbox goes in `sandbox`). */
  service?: string;
}

/** One event as callers see it. */
export interface RealmEvent {
  /** Monotonic within this daemon's life (a restart begins again at 1: see EventBus.boot). */
  id: number;
  /** `sandbox.created`, `run.finished`, `job.running`, `node.joined`, … */
  type: string;
  /** ISO 8601. */
  time: string;
  ids: EventIds;
  /** The labels of the sandbox it is about (filterable with `label=k=v`). */
  labels?: Record<string, string>;
  data: Record<string, unknown>;
}

/** An event as the bus keeps it: with who may see it. */
export interface HeldEvent extends RealmEvent {
  /** `uid:N` of the owner (root sees all); null: every authenticated caller (node events). */
  owner: string | null;
}

export interface EmitInput {
  type: string;
  /** Undefined: root's (as records from before owners were kept). */
  owner: string | undefined | null;
  ids?: EventIds;
  labels?: Record<string, string> | undefined;
  data?: Record<string, unknown>;
}

/** How many past events are kept for `Last-Event-ID` resumes. */
export const EVENT_RING = 1000;

export type EventListener = (e: HeldEvent) => void;

export class EventBus {
  /**
   * This bus's life (a daemon's, from start to stop), random: ids begin again at 1 after a
   * restart, so a reader that resumes tells which life its Last-Event-ID is of.
   */
  readonly boot = randomBytes(8).toString('hex');
  private readonly ring: HeldEvent[] = [];
  private readonly listeners = new Set<EventListener>();
  private last = 0;

  constructor(private readonly capacity = EVENT_RING) {}

  emit(input: EmitInput): void {
    const e: HeldEvent = {
      id: ++this.last,
      type: input.type,
      time: new Date().toISOString(),
      ids: input.ids ?? {},
      ...(input.labels && Object.keys(input.labels).length ? { labels: input.labels } : {}),
      data: input.data ?? {},
      owner: input.owner === null ? null : (input.owner ?? 'uid:0'),
    };
    this.ring.push(e);
    if (this.ring.length > this.capacity) this.ring.shift();
    for (const l of this.listeners) {
      try {
        l(e);
      } catch {
        // A listener's fault is its own; the lifecycle that emitted goes on.
      }
    }
  }

  subscribe(l: EventListener): () => void {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }

  /** The id of the newest event (0: none yet). */
  get lastId(): number {
    return this.last;
  }

  /**
   * The kept events after `id`; `missed` says how many after it are gone from the ring (or -1
   * when `id` is newer than any event of this daemon's life: it came from before a restart).
   */
  since(id: number): { events: HeldEvent[]; missed: number } {
    if (id > this.last) return { events: [...this.ring], missed: -1 };
    const oldest = this.ring[0]?.id ?? this.last + 1;
    return { events: this.ring.filter((e) => e.id > id), missed: Math.max(0, oldest - id - 1) };
  }
}
