/** The jobs API's shapes (GET /v1/jobs, /v1/jobs/{ref}), as the SDK's jobs.ts has them. */

export type JobRunState = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';
export const ENDED: readonly JobRunState[] = ['succeeded', 'failed', 'cancelled'];

export interface JobAttempt {
  n: number;
  state: 'running' | 'succeeded' | 'failed' | 'lost' | 'cancelled';
  node: string | null;
  startedAt: string;
  endedAt: string | null;
  exitCode: number | null;
  signal: string | null;
  verdict: string | null;
  error: string | null;
  wallMs: number | null;
  cpuMs: number | null;
  memoryBytes: number | null;
  logBytes: number;
}

export interface JobArtifact {
  name: string;
  path: string;
  sha256: string;
  size: number;
  kind: 'file' | 'tar';
  outcome: string;
}

export interface JobRun {
  id: string;
  job: string;
  n: number;
  state: JobRunState;
  position: number | null;
  reason: string | null;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  firing: string | null;
  nextAttemptAt: string | null;
  logDropped: string | null;
  inputs: { dest: string; sha256: string; from: string; unpack: boolean }[];
  attempts: JobAttempt[];
  artifacts: JobArtifact[];
}

export interface JobInfo {
  name: string;
  type: 'batch' | 'cron';
  spec: Record<string, unknown>;
  createdAt: string;
  updatedAt: string;
  schedule: { cron: string[]; timezone: string } | null;
  events: { at: string; type: string; reason: string; run: string | null }[];
  runs: JobRun[];
}

/** An input the dashboard adds to a TOML spec: an uploaded file. */
export interface ExtraInput {
  source: string;
  dest: string;
  unpack?: boolean;
}
