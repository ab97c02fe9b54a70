/** The services and apps APIs' shapes (GET /v1/services, /v1/apps), the SDK's types. */

export type { AppInfo, ReplicaInfo, ServiceInfo } from '@realm/sdk';
import type { ServiceInfo } from '@realm/sdk';

/** `healthy`, `degraded` (some replicas not healthy), `down` (none) or `stopped` (scaled to 0). */
export function health(s: ServiceInfo): string {
  if (s.replicas === 0) return 'stopped';
  if (s.healthy >= s.replicas) return 'healthy';
  return s.healthy === 0 ? 'down' : 'degraded';
}
