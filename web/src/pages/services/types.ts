/** The services and apps APIs' shapes (GET /v1/services, /v1/apps), as the SDK has them. */

export interface ReplicaInfo {
  id: string;
  sandbox: string;
  process: string;
  healthy: boolean;
  generation: number;
  startedAt: string;
}

export interface ServiceInfo {
  name: string;
  kind: 'process';
  image: string;
  command: string;
  port: number;
  memory: number;
  cpus: number;
  pids: number;
  env: string[];
  tags: string[];
  visibility: 'local' | 'public';
  health: { path: string | null; intervalMs: number; timeoutMs: number; threshold: number };
  restart: { delayMs: number; maxDelayMs: number };
  generation: number;
  replicas: number;
  running: number;
  healthy: number;
  restarts: number;
  lastError: string | null;
  replicaList: ReplicaInfo[];
  createdAt: string;
  updatedAt: string;
}

export interface AppInfo {
  name: string;
  sha256: string;
  size: number;
  memory: number;
  fuel: number | null;
  timeoutMs: number;
  visibility: 'local' | 'public';
  replicas: number;
  createdAt: string;
  stats: { requests: number; failed: number; memoryPeakBytes: number | null };
}

/** `healthy`, `degraded` (some replicas not healthy), `down` (none) or `stopped` (scaled to 0). */
export function health(s: ServiceInfo): string {
  if (s.replicas === 0) return 'stopped';
  if (s.healthy >= s.replicas) return 'healthy';
  return s.healthy === 0 ? 'down' : 'degraded';
}
