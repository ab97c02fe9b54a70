/** The daemon's log in the OpenAPI document (see openapi.ts). */
import type { Op } from './openapi.js';

const QUERY =
  '`level` (the least: debug, info, warn, error), `sandbox` (lines about this sandbox id), `since` (ISO 8601, ms since the epoch, or a duration ago such as 10m), `limit` (the newest N, default 100, at most 10000)';

export const LOG_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/logs': {
    get: {
      id: 'getLogs',
      res: 'LogLines',
      summary: `The daemon's log lines (the admin's: they name every tenant's sandboxes and runs), oldest first, from memory and the files under <data-dir>/logs. ${QUERY}`,
      query: ['level', 'sandbox', 'since', 'limit'],
    },
  },
  '/v1/logs/stream': {
    get: {
      id: 'streamLogs',
      res: 'sse',
      summary: `The log as SSE (the admin's): first the newest \`limit\` kept lines that match, then each new one as it is made; each \`message\` is one line's JSON. ${QUERY}. A reader 1000 lines behind gets an \`overflow\` event and the end.`,
      query: ['level', 'sandbox', 'since', 'limit'],
    },
  },
};
