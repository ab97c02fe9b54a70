/** Response shapes of the service routes (see responses.ts for the others). */
import { z } from 'zod';

const time = z.string().describe('ISO 8601');

export const replicaResponse = z.object({
  id: z.string(),
  sandbox: z.string().describe("the replica's sandbox id"),
  process: z.string().describe('the background process running the command'),
  healthy: z.boolean().describe('its health check passed: it gets traffic'),
  generation: z.number().int(),
  startedAt: time,
});

export const serviceResponse = z.object({
  name: z.string(),
  kind: z.literal('process'),
  image: z.string(),
  command: z.string(),
  port: z.number().int(),
  memory: z.number().int(),
  cpus: z.number(),
  pids: z.number().int(),
  env: z.array(z.string()).describe('names of the environment variables set (values are not shown)'),
  tags: z.array(z.string()),
  visibility: z.enum(['local', 'public']),
  health: z.object({
    path: z.string().nullable().describe('HTTP GET path; null: a TCP connect'),
    intervalMs: z.number().int(),
    timeoutMs: z.number().int(),
    threshold: z.number().int(),
  }),
  restart: z.object({ delayMs: z.number().int(), maxDelayMs: z.number().int() }),
  generation: z.number().int(),
  /** Desired replicas. */
  replicas: z.number().int(),
  running: z.number().int().describe('replicas whose process runs'),
  healthy: z.number().int().describe('replicas that get traffic'),
  restarts: z.number().int().describe('replicas restarted after a crash (since this daemon started or the service was pushed)'),
  lastError: z.string().nullable(),
  replicaList: z.array(replicaResponse),
  createdAt: time,
  updatedAt: time,
});
export const serviceListResponse = z.object({ services: z.array(serviceResponse) });
