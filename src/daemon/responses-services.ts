/** Response shapes of the service routes (see responses.ts for the others). */
import { z } from 'zod';

const time = z.string().describe('ISO 8601');

export const replicaResponse = z.object({
  id: z.string(),
  node: z.string().describe('the node that runs it'),
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
  package: z
    .object({
      name: z.string(),
      version: z.string(),
      digest: z.string().describe('sha256 of the .realm file (in the blob store)'),
      mounts: z.array(
        z.object({
          kind: z.enum(['static', 'config', 'work', 'state']),
          path: z.string().describe("where it is in each replica's sandbox"),
          tree: z.string().optional().describe('static, config: the content digest of the tree mounted read-only'),
          volume: z.string().optional().describe('state: the volume that holds it'),
          node: z
            .string()
            .optional()
            .describe('state, in a cluster: the node the volume is on, where every replica runs (the service is pinned there)'),
        }),
      ),
    })
    .nullable()
    .describe('the package it was deployed from (realm package deploy); null for a service pushed without one'),
  update: z.object({ healthyDeadlineMs: z.number().int(), minHealthyTimeMs: z.number().int() }),
  disconnect: z
    .object({
      stopAfterMs: z
        .number()
        .int()
        .nullable()
        .describe(
          'a node cut off from etcd stops its replicas once its lease was not known alive this long; null: they keep running (the default)',
        ),
    })
    .describe('what a node cut off from etcd does with its replicas (a cluster)'),
  generation: z.number().int(),
  rollout: z
    .object({
      startedAt: time,
      from: z
        .number()
        .int()
        .nullable()
        .describe('the generation it replaces (what a failure rolls back to); null: none to go back to'),
    })
    .nullable()
    .describe('the rollout of `generation` under way, or null'),
  /** Desired replicas. */
  replicas: z.number().int(),
  running: z.number().int().describe('replicas whose process runs'),
  healthy: z.number().int().describe('replicas that get traffic'),
  restarts: z.number().int().describe('replicas restarted after a crash (since this daemon started or the service was pushed)'),
  lastError: z.string().nullable().describe("the last error of a replica, or why replicas are not placed (a cluster's)"),
  placement: z
    .object({
      nodes: z
        .array(z.object({ node: z.string(), replicas: z.number().int() }))
        .describe('replicas assigned per node (a node alone: all of them, to itself)'),
      reason: z
        .string()
        .nullable()
        .describe("why not every replica is placed (no node fits: each node's reason); null when they are"),
    })
    .describe('where the replicas are to run'),
  replicaList: z.array(replicaResponse),
  createdAt: time,
  updatedAt: time,
});
export const packageDeploymentResponse = z.object({
  name: z.string().describe('the service (or app, for a component)'),
  kind: z.enum(['process', 'wasm']),
  package: serviceResponse.shape.package.unwrap(),
  seeded: z.array(z.string()).describe('state volumes this deploy made and seeded (a later deploy leaves them be)'),
  service: serviceResponse.nullable().describe('the service as pushed (null for a component: see realm push ls)'),
});
export const serviceListResponse = z.object({ services: z.array(serviceResponse) });

export const generationResponse = z.object({
  generation: z.number().int(),
  digest: z.string().describe('sha256 of the spec as pushed'),
  at: time,
  by: z.string().describe('who pushed or restarted'),
  cause: z.enum(['push', 'restart']),
  package: z
    .object({ name: z.string(), version: z.string(), digest: z.string() })
    .nullable()
    .describe('the package this generation was deployed from (a rollback brings back its mounts); null: pushed without one'),
  outcome: z
    .enum(['rolling-out', 'rolled-out', 'rolled-back', 'failed', 'superseded'])
    .describe('failed: a first generation (nothing to roll back to) whose replica did not become healthy'),
  reason: z.string().nullable().describe('why it rolled back or failed'),
  finishedAt: time.nullable(),
});
export const serviceHistoryResponse = z.object({ name: z.string(), history: z.array(generationResponse) });
