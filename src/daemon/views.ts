/** What the API shows of engine records. */
import type { z } from 'zod';
import type { SandboxRecord } from '../store/store.js';
import type { WorkspaceInfo } from '../engine/workspaces.js';
import type { sandboxResponse, workspaceResponse } from './responses.js';

/** A workspace as the API shows it (the OpenAPI document's Workspace). */
export function workspaceView(w: WorkspaceInfo): z.output<typeof workspaceResponse> {
  return {
    name: w.name,
    project: w.project,
    path: w.path,
    lastUsedAt: new Date(w.lastUsedAt).toISOString(),
    sandbox: sandboxView(w.sandbox),
  };
}

/** A sandbox as the API shows it (the OpenAPI document's Sandbox: a field added here goes there too). */
export function sandboxView(r: SandboxRecord): z.output<typeof sandboxResponse> {
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
