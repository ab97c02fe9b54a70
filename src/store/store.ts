/**
 * State behind one interface: SQLite for a single node (here), etcd for a cluster (later).
 * Methods are async so a networked store fits the same shape.
 */
import type { DriverName, DriverState, NetworkMode, SandboxLimits } from '../drivers/driver.js';
import type { JobRecord, JobRunRecord } from '../jobs/records.js';

export type SandboxStatus = 'creating' | 'running' | 'stopped' | 'destroying';

export interface VolumeMount {
  volume: string;
  path: string;
  readOnly: boolean;
}

/**
 * What makes a sandbox a workspace, or a volume a workspace's clone: set only by Workspaces
 * (never a label, never a name), so no API caller can make one claim to be another's workspace.
 */
export interface WorkspaceOf {
  /** The workspace's name (its sandbox and volume are called `ws-NAME`). */
  name: string;
  /** Who opened it, where the caller is known (a local uid, a token); checked when given. */
  owner?: string;
}

export interface SandboxRecord {
  id: string;
  name: string | null;
  driver: DriverName;
  image: string;
  status: SandboxStatus;
  limits: SandboxLimits;
  network: NetworkMode;
  /** Allow-list (HOST[:PORT] rules): the sandbox reaches only these, through its proxy. */
  allow?: string[];
  /** Rules that win over allow. */
  deny?: string[];
  /** Headers the proxy adds to plain HTTP requests to a host (secrets that never enter the sandbox). */
  inject?: { host: string; header: string; value: string }[];
  volumes: VolumeMount[];
  env: Record<string, string>;
  labels: Record<string, string>;
  /** Destroyed automatically after this time (ms since epoch), or never when null. */
  expiresAt: number | null;
  createdAt: number;
  /** Last opened or attached by a person or agent (workspaces), ms since epoch. */
  usedAt?: number;
  /** True for the throwaway sandbox of a one-shot run. */
  ephemeral: boolean;
  /** Set on a workspace's sandbox only (its kind), with the repository it was cloned from. */
  workspace?: WorkspaceOf & { project: string };
  /** The principal that made it (`uid:N`, see engine/owner.ts); absent means root. */
  owner?: string;
  /** The host uid (and gid) it runs as, its own (engine/host-ids.ts); absent: 65532, as every sandbox of an older realm. */
  uid?: number;
  /** Host directories (the storage uid's) bound in like volumes, set by realm only: a package's mounts (packages/). */
  binds?: { source: string; target: string; readOnly: boolean }[];
  driverState: DriverState;
}

export interface VolumeRecord {
  name: string;
  createdAt: number;
  labels: Record<string, string>;
  /** Set on a workspace's clone only: no other sandbox mounts it, no generic route removes it. */
  workspace?: WorkspaceOf;
  /** The principal that made it (`uid:N`); absent means root. */
  owner?: string;
}

/** An app on the gateway (`realm push`): a WASI module served at /NAME/ with its limits. */
export interface AppRecord {
  name: string;
  /** sha256 of the module, hex: its bytes are kept under the data dir by this name. */
  sha256: string;
  size: number;
  memoryBytes: number;
  /** Wasmtime fuel per request; absent: none. */
  fuel?: number;
  timeoutMs: number;
  /** `local`: served to loopback clients only; `public`: to anyone the gateway hears. */
  visibility: 'local' | 'public';
  /** Runners serving it; absent (an app pushed before there was a choice): DEFAULT_REPLICAS. */
  replicas?: number;
  createdAt: number;
  /** The principal that pushed it (`uid:N`); absent means root. */
  owner?: string;
}

export interface TokenRecord {
  /** Public part of the token (`rlm_<id>_<secret>`), used to find it. */
  id: string;
  name: string;
  /** sha256 of the secret part, hex. The secret itself is never stored. */
  hash: string;
  createdAt: number;
  /** The principal that made it and that it acts as (`uid:N`); absent means root (tokens from before owners). */
  owner?: string;
}

/** A dashboard session (daemon/ui-session.ts), kept by the sha256 of its cookie's secret: never the secret. */
export interface UiSessionRecord {
  /** sha256 of the cookie's secret, hex. */
  digest: string;
  /** The principal it acts as (its token's). */
  owner: string;
  /** The token it was made with (revoked: the session ends); null for the admin token. */
  tokenId: string | null;
  createdAt: number;
  expiresAt: number;
}

export interface Store {
  putSandbox(rec: SandboxRecord): Promise<void>;
  getSandbox(id: string): Promise<SandboxRecord | null>;
  getSandboxByName(name: string): Promise<SandboxRecord | null>;
  listSandboxes(): Promise<SandboxRecord[]>;
  deleteSandbox(id: string): Promise<void>;
  putVolume(rec: VolumeRecord): Promise<void>;
  getVolume(name: string): Promise<VolumeRecord | null>;
  listVolumes(): Promise<VolumeRecord[]>;
  deleteVolume(name: string): Promise<void>;
  putApp(rec: AppRecord): Promise<void>;
  getApp(name: string): Promise<AppRecord | null>;
  listApps(): Promise<AppRecord[]>;
  deleteApp(name: string): Promise<void>;
  putToken(rec: TokenRecord): Promise<void>;
  getToken(id: string): Promise<TokenRecord | null>;
  listTokens(): Promise<TokenRecord[]>;
  /** Forgets the token and every dashboard session made with it. */
  deleteToken(id: string): Promise<void>;
  putUiSession(rec: UiSessionRecord): Promise<void>;
  getUiSession(digest: string): Promise<UiSessionRecord | null>;
  deleteUiSession(digest: string): Promise<void>;
  /** Forgets the sessions ended by `now`, then the oldest beyond the newest `keep`. */
  pruneUiSessions(now: number, keep: number): Promise<void>;
  putJob(rec: JobRecord): Promise<void>;
  getJob(name: string): Promise<JobRecord | null>;
  listJobs(): Promise<JobRecord[]>;
  deleteJob(name: string): Promise<void>;
  /**
   * Write a job's run; a run whose record says it ended is written once and never again: false
   * (and nothing written) when the stored one has already ended.
   */
  putJobRun(rec: JobRunRecord): Promise<boolean>;
  getJobRun(id: string): Promise<JobRunRecord | null>;
  /** Every run, or one job's, oldest first. */
  listJobRuns(job?: string): Promise<JobRunRecord[]>;
  deleteJobRun(id: string): Promise<void>;
  close(): void;
}
