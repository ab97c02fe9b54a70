/**
 * `GET /v1/events`: the event bus (engine/events.ts) as Server-Sent Events. Each event is a
 * `message` with `id:` (resume with `Last-Event-ID`) and the event as JSON; what the stream says
 * about itself (`stream.gap`: events between the asked id and the oldest kept are gone;
 * `stream.overflow`: this reader fell too far behind and is dropped) comes as a `message` without
 * an id. A reader sees its own things' events (root: all) and every node event.
 *
 * Ids begin again at 1 when the daemon restarts, so an id alone cannot say which life it is of:
 * the answer names this life in `X-Realm-Boot`, and a reader that resumes sends it back as
 * `?boot=`. An id of another life resumes from the oldest event kept (all of this life that is
 * kept), after a stream.gap that says the daemon restarted: nothing of the new life is skipped
 * because its ids happen to be lower than the one asked.
 */
import type { Context, Hono } from 'hono';
import { type SSEMessage, streamSSE } from 'hono/streaming';
import { EVENT_RING, type EventBus, type HeldEvent, type RealmEvent } from '../../engine/events.js';
import { mayUse } from '../../engine/owner.js';
import { RealmError } from '../../util/errors.js';
import { principal } from '../principal.js';

/** Events waiting for one slow reader before it is dropped: a reader never costs more than this. */
export const READER_BACKLOG = 1000;
const PING_MS = 15_000;

/**
 * The filter of `type` (repeatable or comma-separated: `sandbox.created`, `sandbox.*`, or
 * `sandbox` for the whole family) and `label` (`k=v`, repeatable, all must hold).
 */
export function eventFilter(types: string[], labels: string[]): (e: RealmEvent) => boolean {
  const patterns = types
    .flatMap((t) => t.split(','))
    .map((t) => t.trim())
    .filter(Boolean);
  for (const p of patterns)
    if (!/^[a-z*][a-z.*-]*$/.test(p))
      throw new RealmError('INVALID_REQUEST', `event type "${p}" is not a type or a pattern such as sandbox.* or run.finished`);
  const want: [string, string][] = labels.map((l) => {
    const i = l.indexOf('=');
    if (i <= 0) throw new RealmError('INVALID_REQUEST', `label filter "${l}" must look like key=value`);
    return [l.slice(0, i), l.slice(i + 1)];
  });
  const typeOk = (t: string): boolean =>
    patterns.length === 0 ||
    patterns.some((p) =>
      p.endsWith('*') ? t.startsWith(p.slice(0, -1)) : p.includes('.') ? t === p : t === p || t.startsWith(`${p}.`),
    );
  return (e) => typeOk(e.type) && want.every(([k, v]) => e.labels?.[k] === v);
}

function lastEventId(c: Context): number | undefined {
  const raw = c.req.header('last-event-id') ?? c.req.query('since');
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d{1,15}$/.test(raw))
    throw new RealmError('INVALID_REQUEST', `Last-Event-ID "${raw}" must be an event id (a whole number)`);
  return Number(raw);
}

/** The event as the stream sends it (who may see it is the daemon's business). */
function shown(e: HeldEvent): SSEMessage {
  const { owner: _owner, ...event } = e;
  return { id: String(e.id), data: JSON.stringify(event) };
}

const note = (type: string, data: Record<string, unknown>): SSEMessage => ({
  data: JSON.stringify({ type, time: new Date().toISOString(), data }),
});

export function eventRoutes(app: Hono, bus: EventBus): void {
  app.get('/v1/events', (c) => {
    const match = eventFilter(c.req.queries('type') ?? [], c.req.queries('label') ?? []);
    const asked = lastEventId(c);
    const boot = c.req.query('boot');
    if (boot !== undefined && !/^[0-9a-f]{1,64}$/.test(boot))
      throw new RealmError('INVALID_REQUEST', `boot "${boot}" must be the X-Realm-Boot of an earlier answer (hex)`);
    const otherLife = asked !== undefined && boot !== undefined && boot !== bus.boot;
    // Of another life: from before the first event of this one.
    const after = otherLife ? 0 : asked;
    c.header('X-Realm-Boot', bus.boot);
    const who = principal(c).id;
    const seen = (e: HeldEvent): boolean => (e.owner === null || mayUse(who, e.owner)) && match(e);
    return streamSSE(c, async (stream) => {
      const pending: (SSEMessage | 'ping')[] = [];
      let wake: (() => void) | undefined;
      let closed = false;
      let dropped = false;
      let lastSent = after ?? bus.lastId;
      const push = (m: SSEMessage | 'ping'): void => {
        if (dropped || closed) return;
        pending.push(m);
        wake?.();
      };
      const onEvent = (e: HeldEvent): void => {
        if (!seen(e) || dropped) return;
        if (pending.length >= READER_BACKLOG) {
          // Too far behind: what waits is let go, and the reader is told where to resume from.
          dropped = true;
          pending.length = 0;
          pending.push(
            note('stream.overflow', {
              reason: `this reader fell ${READER_BACKLOG} events behind; reconnect with Last-Event-ID to resume (the daemon keeps the last ${EVENT_RING})`,
              lastEventId: lastSent,
            }),
          );
          wake?.();
          return;
        }
        push(shown(e));
      };
      // The backlog and the live events are taken in one tick: none is missed or sent twice.
      const off = bus.subscribe(onEvent);
      if (after !== undefined) {
        const { events, missed } = bus.since(after);
        if (otherLife || missed < 0)
          push(
            note('stream.gap', {
              reason: `event ${asked} is not of this daemon's life (it restarted): what happened meanwhile is not kept`,
              restarted: true,
              boot: bus.boot,
            }),
          );
        else if (missed > 0)
          push(
            note('stream.gap', {
              reason: `${missed} events after ${after} are older than the last ${EVENT_RING} this daemon keeps`,
              missed,
            }),
          );
        for (const e of events) if (seen(e)) push(shown(e));
      }
      const ping = setInterval(() => push('ping'), PING_MS);
      stream.onAbort(() => {
        closed = true;
        wake?.();
      });
      try {
        for (;;) {
          const m = pending.shift();
          if (!m) {
            if (closed || dropped) break;
            await new Promise<void>((r) => (wake = r));
            wake = undefined;
            continue;
          }
          if (closed) break;
          if (m === 'ping') await stream.write(': ping\n\n');
          else {
            await stream.writeSSE(m);
            if (m.id) lastSent = Number(m.id);
          }
        }
      } finally {
        off();
        clearInterval(ping);
      }
    });
  });
}
