/** The observation routes in the OpenAPI document (see openapi.ts): the event stream, a sandbox's live stats. */
import type { Op } from './openapi.js';

export const OBSERVE_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/events': {
    get: {
      id: 'streamEvents',
      res: 'sse',
      summary:
        'What happens, as SSE: sandbox.created|started|stopped|destroyed|oom, run.finished (language, driver, verdict, wallMs), job.<state>, app.pushed|removed, service.pushed|scaled|removed|rolled-out|rolled-back|failed, service.replica.started|healthy|unhealthy|exited|failed, node.joined|left. Each `message` is {id, type, time, ids, labels?, data} with `id:` set; resume with the Last-Event-ID header (or ?since=ID) from the last 1000 kept. Ids begin again at 1 when the daemon restarts: the X-Realm-Boot header of the answer names the life of this daemon; send it back as ?boot= when resuming, and an id of another life resumes from the oldest event kept, after a stream.gap with restarted: true (reload what you show). `type` filters (repeatable or comma list; `sandbox.*` or `sandbox` for a family), `label=k=v` (repeatable) too. A caller sees its own things and every node event; root sees all. Messages of type stream.gap (events missed) and stream.overflow (this reader fell 1000 behind and is dropped) have no id.',
      query: ['type', 'label', 'since', 'boot'],
    },
  },
  '/v1/sandboxes/{id}/stats': {
    get: {
      id: 'getSandboxStats',
      res: 'SandboxStats',
      summary:
        'Live figures of a running sandbox: cpu (seconds, % of one core over a quarter second), memory (now, peak), pids, disk used, network bytes (null where the driver cannot tell); SANDBOX_NOT_RUNNING when stopped',
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/stats/stream': {
    get: {
      id: 'streamSandboxStats',
      res: 'sse',
      summary:
        'The same figures as SSE: a `stats` event every interval (default 1s, 250ms to 1h), cpu % over it; an `error` event and the end when the sandbox stops or goes',
      params: ['id'],
      query: ['interval'],
    },
  },
};
