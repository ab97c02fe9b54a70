/** The metrics routes in the OpenAPI document (see openapi.ts). */
import type { Op } from './openapi.js';

export const METRICS_ROUTES: Record<string, Record<string, Op>> = {
  '/metrics': {
    get: {
      id: 'getMetrics',
      res: 'text',
      summary:
        "Prometheus metrics (text exposition format): sandboxes, runs, execs, warm pools, API requests, gateway, jobs, blob store, egress proxy, each live sandbox's memory/cpu/pids, the daemon's process; the admin's unless the daemon runs with --metrics-public; METRICS_OFF with --no-metrics",
    },
  },
  '/v1/metrics/history': {
    get: {
      id: 'getMetricsHistory',
      res: 'MetricsHistory',
      query: ['since'],
      summary:
        'The last hour of this node in 5 s samples, oldest first (after `since`, ms since the epoch, when given): sandboxes by state, runs/s, execs/s, sandbox and daemon memory and cpu',
    },
  },
};
