/** Response shapes of the node routes (see responses.ts for the others). */
import { z } from 'zod';

const time = z.string().describe('ISO 8601');

export const clusterNodeResponse = z.object({
  id: z.string(),
  address: z.string(),
  tags: z.array(z.string()),
  state: z.enum(['up', 'down', 'draining']),
  fenced: z.boolean(),
  self: z.boolean(),
  joinedAt: time,
  report: z
    .object({
      version: z.string(),
      platform: z.string(),
      hostname: z.string(),
      drivers: z.array(z.string()),
      /** `jobs`: job attempts it runs at once (a node that runs no jobs leaves it out). */
      capacity: z.object({
        cpus: z.number().int(),
        memoryBytes: z.number(),
        sandboxes: z.number().int(),
        jobs: z.number().int().optional(),
      }),
      load: z.object({ sandboxes: z.number().int(), loadAvg1: z.number() }),
      startedAt: time,
      /** Its lease's TTL in ms (a node of an older release leaves it out). */
      leaseTtlMs: z.number().int().optional(),
    })
    .nullable(),
});
export const clusterInviteResponse = z.object({ token: z.string(), expiresAt: time });
export const nodeListResponse = z.object({ nodes: z.array(clusterNodeResponse) });
