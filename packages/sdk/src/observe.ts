/**
 * Watching a node: its event stream (`GET /v1/events`) and a sandbox's live figures (see
 * `Sandbox.stats` and `Sandbox.statsStream`).
 *
 * @example
 *   for await (const e of events({ types: ['sandbox.*'], labels: { team: 'a' } })) console.log(e.id, e.type, e.ids);
 */
import { Client, type ClientOptions } from './client.js';
import { readSse } from './sse.js';

/** A running sandbox's figures; null where the driver cannot tell. */
export interface SandboxStats {
  id: string;
  time: string;
  driver: string;
  /** `percent`: of one core over `intervalMs` (100 = one core busy). */
  cpu: { seconds: number; percent: number | null; intervalMs: number | null; limitCpus: number };
  memory: { bytes: number; peakBytes: number | null; limitBytes: number };
  pids: { current: number; limit: number };
  disk: { usedBytes: number | null; limitBytes: number };
  network: { rxBytes: number; txBytes: number } | null;
}

/**
 * One event. `type`: sandbox.created|started|stopped|destroyed|oom, run.finished, job.<state>,
 * app.pushed|removed, service.* (pushed, scaled, removed, rolled-out, rolled-back, failed, replica.started|healthy|unhealthy|exited|failed), node.joined|left — or, with no `id`, what the stream says of itself:
 * stream.gap (events were missed), stream.overflow (this reader fell behind and is dropped).
 */
export interface RealmEvent {
  /** Absent on stream.* messages. */
  id?: number;
  type: string;
  time: string;
  ids?: { sandbox?: string; run?: string; job?: string; node?: string; app?: string; service?: string };
  labels?: Record<string, string>;
  data: Record<string, unknown>;
}

export interface EventsOptions {
  /** Types or patterns: `sandbox.created`, `sandbox.*`, `sandbox` (a family). */
  types?: string[];
  /** Only events about things with all these labels. */
  labels?: Record<string, string>;
  /** Resume after this event id (as Last-Event-ID). */
  after?: number;
  /**
   * The daemon life `after` belongs to (the `boot` that `onOpen` gave when it was seen). Ids
   * begin again at 1 when a daemon restarts: with `boot`, an id of another life resumes from the
   * oldest event kept, after a stream.gap with `data.restarted: true`, instead of skipping the new
   * life's first events.
   */
  boot?: string;
  /** Called once the stream is open, with the daemon's life (its X-Realm-Boot): keep it with the last id to resume. */
  onOpen?: (info: { boot: string }) => void;
  signal?: AbortSignal;
}

/** The node's events as they happen, until `signal` aborts (or the daemon drops this reader: a stream.overflow event, then the end). */
export async function* events(opts: EventsOptions = {}, client: ClientOptions | Client = {}): AsyncGenerator<RealmEvent> {
  const c = client instanceof Client ? client : new Client(client);
  const q = new URLSearchParams();
  for (const t of opts.types ?? []) q.append('type', t);
  for (const [k, v] of Object.entries(opts.labels ?? {})) q.append('label', `${k}=${v}`);
  if (opts.boot !== undefined) q.set('boot', opts.boot);
  const qs = q.toString();
  const headers = opts.after !== undefined ? { 'last-event-id': String(opts.after) } : undefined;
  const body = await c.stream('GET', `/v1/events${qs ? `?${qs}` : ''}`, undefined, opts.signal, headers);
  const boot = body.headers['x-realm-boot'];
  if (typeof boot === 'string') opts.onOpen?.({ boot });
  for await (const msg of readSse(body)) yield JSON.parse(msg.data) as RealmEvent;
}
