/** Response shapes of the upgrade routes (see responses.ts for the others). */
import { z } from 'zod';

const outcome = z.object({
  version: z.number().int(),
  phase: z
    .enum(['verifying', 'installing', 'restarting', 'succeeded', 'rolled-back', 'refused', 'failed'])
    .describe('succeeded, rolled-back, refused and failed are final'),
  code: z.string().optional().describe('the error code when refused, rolled back or failed'),
  message: z.string(),
  at: z.string().describe('ISO 8601'),
  request: z.string().optional().describe('the id of the request (POST /v1/upgrades) it answers'),
});

export const upgradeStatusResponse = z.object({
  nodes: z.array(
    z.object({
      node: z.string(),
      version: z.number().int().describe('the release the node runs (0: the one it was installed with)'),
      platform: z.string(),
      last: outcome.nullable().describe('the last upgrade this node acted on; null: none'),
    }),
  ),
});

export const upgradeAcceptedResponse = z.object({
  version: z.number().int(),
  digest: z.string(),
  nodes: z.array(z.string()).describe('the nodes asked to upgrade; `GET /v1/upgrades` follows them'),
  request: z.string().describe('this request’s id: each node’s outcome of it carries it'),
});
