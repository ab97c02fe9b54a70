/** Response shapes of the jobs routes (see responses.ts for the others). */
import { z } from 'zod';

const time = z.string().describe('ISO 8601');
const maybeTime = time.nullable();

export const jobAttemptResponse = z.object({
  n: z.number().int(),
  state: z.enum(['running', 'succeeded', 'failed', 'lost', 'cancelled']),
  /** In a cluster: the node it was placed on (its log is kept there). */
  node: z.string().nullable(),
  startedAt: time,
  endedAt: maybeTime,
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  verdict: z.string().nullable(),
  error: z.string().nullable(),
  wallMs: z.number().nullable(),
  cpuMs: z.number().nullable(),
  memoryBytes: z.number().nullable(),
  logBytes: z.number().int(),
});

export const jobArtifactResponse = z.object({
  name: z.string(),
  path: z.string(),
  sha256: z.string(),
  size: z.number().int(),
  kind: z.enum(['file', 'tar']),
  /** `ok`, or what ended the attempt that made it. */
  outcome: z.string(),
});
export const jobArtifactListResponse = z.array(jobArtifactResponse);

export const jobRunResponse = z.object({
  id: z.string(),
  job: z.string(),
  n: z.number().int(),
  state: z.enum(['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled']),
  /** Queued: its place in the node's queue (1 starts next). */
  position: z.number().int().nullable(),
  reason: z.string().nullable(),
  createdAt: time,
  startedAt: maybeTime,
  endedAt: maybeTime,
  firing: maybeTime,
  nextAttemptAt: maybeTime,
  /** When this run's logs were dropped to keep the node's job logs under their bound (each log then says so). */
  logDropped: maybeTime,
  inputs: z.array(z.object({ dest: z.string(), sha256: z.string(), from: z.string(), unpack: z.boolean() })),
  attempts: z.array(jobAttemptResponse),
  artifacts: z.array(jobArtifactResponse),
});

export const jobResponse = z.object({
  name: z.string(),
  type: z.enum(['batch', 'cron']),
  spec: z.record(z.string(), z.unknown()),
  createdAt: time,
  updatedAt: time,
  schedule: z.object({ cron: z.array(z.string()), timezone: z.string() }).nullable(),
  events: z.array(z.object({ at: time, type: z.string(), reason: z.string(), run: z.string().nullable() })),
  runs: z.array(jobRunResponse),
});
export const jobListResponse = z.object({ jobs: z.array(jobResponse) });
export const jobCancelResponse = z.object({ runs: z.array(jobRunResponse) });
