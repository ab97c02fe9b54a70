/** What the API shows of engine records. */
import type { SandboxRecord } from '../store/store.js';

export function sandboxView(r: SandboxRecord) {
  return {
    id: r.id,
    name: r.name,
    driver: r.driver,
    image: r.image,
    status: r.status,
    limits: r.limits,
    network: r.network,
    allow: r.allow ?? [],
    deny: r.deny ?? [],
    // Which headers are injected where, never their values.
    inject: (r.inject ?? []).map((i) => ({ host: i.host, header: i.header })),
    volumes: r.volumes,
    labels: r.labels,
    createdAt: new Date(r.createdAt).toISOString(),
    expiresAt: r.expiresAt === null ? null : new Date(r.expiresAt).toISOString(),
  };
}
