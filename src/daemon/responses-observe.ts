/** Response shapes of the observation routes: a sandbox's live stats (see responses.ts for the others). */
import { z } from 'zod';

export const sandboxStatsResponse = z.object({
  id: z.string(),
  time: z.string().describe('ISO 8601, when the figures were read'),
  driver: z.string(),
  cpu: z.object({
    seconds: z.number().describe('CPU time used since the sandbox started'),
    percent: z.number().nullable().describe('of one core, over intervalMs (100 = one core busy); null on a first sample'),
    intervalMs: z.number().nullable(),
    limitCpus: z.number(),
  }),
  memory: z.object({
    bytes: z.number(),
    peakBytes: z.number().nullable().describe("null: the host's cgroups keep no peak"),
    limitBytes: z.number(),
  }),
  pids: z.object({ current: z.number().int(), limit: z.number().int() }),
  disk: z.object({
    usedBytes: z.number().nullable().describe('bytes used in its writable layer; null: the driver cannot tell'),
    limitBytes: z.number(),
  }),
  network: z
    .object({ rxBytes: z.number(), txBytes: z.number() })
    .nullable()
    .describe("bytes through its network namespace's interfaces but loopback; null: the driver cannot tell"),
});
