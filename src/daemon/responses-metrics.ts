/** The metrics history's shape (GET /v1/metrics/history; see metrics/history.ts). */
import { z } from 'zod';

export const metricsHistoryResponse = z.object({
  /** Seconds between samples (5). */
  intervalSeconds: z.number(),
  /** Oldest first; at most an hour of them. */
  samples: z.array(
    z.object({
      time: z.number().int(),
      sandboxes: z.record(z.string(), z.number().int()),
      runsPerSecond: z.number(),
      execsPerSecond: z.number(),
      sandboxMemoryBytes: z.number(),
      sandboxCpus: z.number(),
      daemonMemoryBytes: z.number(),
      daemonCpus: z.number(),
    }),
  ),
});
