/**
 * Server-Sent Events over fetch: EventSource cannot send the `X-Realm-UI` header the cookie wants,
 * so streams are read with fetch and parsed by eventsource-parser.
 *
 * `sse()` follows any SSE route (a sandbox's stats, a run's output). The event bus
 * (GET /v1/events) is read ONCE for the whole app while logged in (`startEvents`), and pages
 * subscribe to it with `useEvents`/`onEvent`: the dashboard lives on this stream and polls nothing
 * per sandbox. It resumes after a drop from the last id seen (Last-Event-ID).
 *
 * Ids begin again at 1 when the daemon restarts: the stream's answer names the daemon's life
 * (X-Realm-Boot), sent back as `?boot=` on a resume. When the life changed, or the daemon says
 * events were missed (a stream.gap), what pages show may be stale: `resync` ticks, and every
 * `useLoad` loads again (see components/ui.tsx).
 */
import { signal } from '@preact/signals';
import { useEffect } from 'preact/hooks';
import { EventSourceParserStream } from 'eventsource-parser/stream';
import { type Query, request, session } from './api';

/** One event of the bus (GET /v1/events). */
export interface RealmEvent {
  id: number;
  type: string;
  time: string;
  ids: Record<string, string | undefined>;
  labels?: Record<string, string>;
  data: Record<string, unknown>;
}

export interface SseMessage {
  event: string;
  data: string;
  id: string | undefined;
}

/**
 * Read an SSE route until `signal` aborts or the stream ends; `onMessage` gets each message.
 * Resolves when the stream ends, rejects on an HTTP error (ApiError) or a network failure.
 */
export async function sse(
  path: string,
  onMessage: (m: SseMessage) => void,
  opts: { query?: Query; signal: AbortSignal; lastEventId?: string; onOpen?: (res: Response) => void },
): Promise<void> {
  const headers: Record<string, string> = { Accept: 'text/event-stream' };
  if (opts.lastEventId !== undefined) headers['Last-Event-ID'] = opts.lastEventId;
  const res = await request('GET', path, { query: opts.query, signal: opts.signal, headers });
  if (!res.body) return;
  opts.onOpen?.(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onMessage({ event: value.event ?? 'message', data: value.data, id: value.id });
    }
  } finally {
    reader.releaseLock();
  }
}

/** How many bus events the app keeps for pages that show recent ones. */
const KEEP = 200;
/** The latest bus events, newest first. */
export const recentEvents = signal<RealmEvent[]>([]);
/** Whether the bus stream is connected (shown in the header). */
export const live = signal(false);
/** Ticks when events may have been missed (the daemon restarted, or a gap): loaded data is reloaded. */
export const resync = signal(0);

type Listener = (e: RealmEvent) => void;
const listeners = new Set<Listener>();

/** Call `fn` for each bus event until the returned function is called. */
export function onEvent(fn: Listener): () => void {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** `onEvent` for a component's life; `deps` re-subscribe as in useEffect. */
export function useEvents(fn: Listener, deps: unknown[] = []): void {
  useEffect(() => onEvent(fn), deps);
}

/** True for an event whose type is `pattern` or in its family (`sandbox` or `sandbox.*` match `sandbox.created`). */
export function isType(e: RealmEvent, ...patterns: string[]): boolean {
  return patterns.some((p) => {
    const fam = p.endsWith('.*') ? p.slice(0, -2) : p;
    return e.type === fam || e.type.startsWith(`${fam}.`);
  });
}

let running: AbortController | undefined;

/** Follow the bus while logged in; idempotent. Stops by itself when the session ends. */
export function startEvents(): void {
  if (running) return;
  const ctl = new AbortController();
  running = ctl;
  // From the start of what the daemon keeps (its last EVENT_RING events): recent runs and events show at once.
  let last: string | undefined = '0';
  let boot: string | undefined;
  let backoff = 500;
  const loop = async (): Promise<void> => {
    while (!ctl.signal.aborted && session.value === 'in') {
      try {
        await sse(
          '/v1/events',
          (m) => {
            let e: RealmEvent;
            try {
              e = JSON.parse(m.data) as RealmEvent;
            } catch {
              return;
            }
            if (m.id !== undefined) last = m.id;
            if (m.id === undefined) {
              // A gap (events missed, or the daemon restarted): reload what is shown. (stream.overflow ends the stream: the resume follows.)
              if (e.type === 'stream.gap') resync.value++;
              return;
            }
            recentEvents.value = [e, ...recentEvents.value].slice(0, KEEP);
            for (const l of listeners) l(e);
          },
          {
            signal: ctl.signal,
            lastEventId: last,
            ...(boot ? { query: { boot } } : {}),
            onOpen: (res) => {
              const now = res.headers.get('X-Realm-Boot') ?? undefined;
              if (boot !== undefined && now !== boot) {
                // Another life of the daemon: it replays its own events from the first kept.
                recentEvents.value = [];
                resync.value++;
              }
              boot = now;
              live.value = true;
              backoff = 500;
            },
          },
        );
      } catch {
        // dropped, or the daemon restarted: try again after a pause
      }
      live.value = false;
      if (ctl.signal.aborted) break;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 10_000);
    }
    if (running === ctl) running = undefined;
  };
  void loop();
}

/** Stop following the bus (logout). */
export function stopEvents(): void {
  running?.abort();
  running = undefined;
  live.value = false;
  recentEvents.value = [];
}
