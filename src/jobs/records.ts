/**
 * What the store keeps of jobs: the job (its latest spec, and for a cron job when it last fired),
 * and each run of it — a batch submission or a cron firing — with its attempts and artifacts.
 * A run that has ended is written once (see Store.putJobRun): it can never run again.
 */
import type { Verdict } from '../engine/schemas.js';
import type { JobSpec } from './spec.js';

export type RunState = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';
export const ENDED: readonly RunState[] = ['succeeded', 'failed', 'cancelled'];

export type AttemptState = 'running' | 'succeeded' | 'failed' | 'lost' | 'cancelled';

/** Something that happened to a job that no run shows: a firing skipped or caught up, and why. */
export interface JobEvent {
  at: number;
  type: 'fired' | 'skipped' | 'caught-up' | 'submitted';
  reason: string;
  run?: string;
}

export interface JobRecord {
  name: string;
  /** The principal that submitted it (`uid:N`); absent means root. */
  owner?: string;
  /** The latest spec submitted under this name (a run keeps its own copy). */
  spec: JobSpec;
  createdAt: number;
  updatedAt: number;
  /** Runs made so far: the next one is number `runs + 1`. */
  runs: number;
  /** Cron jobs: the latest firing handled (run, queued or skipped), ms since epoch. */
  lastFiring?: number;
  /** The latest events, newest last (at most 100 kept). */
  events: JobEvent[];
}

export interface ArtifactRecord {
  name: string;
  /** The path it was collected from, inside the sandbox. */
  path: string;
  sha256: string;
  size: number;
  /** A file as it is, or a directory as a tar. */
  kind: 'file' | 'tar';
  /** A file's mode (an executable stays one when it is an input again). */
  mode: number;
  /** The outcome of the attempt that made it: `ok`, or what ended it (`timeout`, `runtime-error`, …). */
  outcome: Verdict;
}

export interface AttemptRecord {
  n: number;
  state: AttemptState;
  /** In a cluster: the node it was placed on (its log is kept there). */
  node?: string;
  sandbox?: string;
  startedAt: number;
  endedAt?: number;
  exitCode?: number | null;
  signal?: string | null;
  verdict?: Verdict;
  /** Why it failed when no exit code says it (an input that could not be placed, a lost daemon). */
  error?: string;
  wallMs?: number;
  cpuMs?: number;
  memoryBytes?: number;
  artifacts: ArtifactRecord[];
  /** Bytes of output logged (stdout and stderr, interleaved). */
  logBytes: number;
}

/** An input as the run will place it: resolved at submission to a blob. */
export interface ResolvedInput {
  dest: string;
  sha256: string;
  size: number;
  unpack: boolean;
  mode: number;
  /** What it was asked as: `cas:sha256:…` or `JOB#N:NAME`. */
  from: string;
}

export interface JobRunRecord {
  id: string;
  job: string;
  /** Its number among the job's runs (1, 2, …). */
  n: number;
  owner?: string;
  state: RunState;
  spec: JobSpec;
  inputs: ResolvedInput[];
  createdAt: number;
  startedAt?: number;
  endedAt?: number;
  /** A cron firing's time, for runs a schedule made. */
  firing?: number;
  /** Retrying: when the next attempt may start. */
  nextAttemptAt?: number;
  attempts: AttemptRecord[];
  /** Why it ended, in words. */
  reason?: string;
}

/** The artifacts a run gives: its last attempt's. */
export function runArtifacts(run: JobRunRecord): ArtifactRecord[] {
  return run.attempts.at(-1)?.artifacts ?? [];
}
