/** Workspaces: private clones of a git repository on this host, in long-lived sandboxes. */
import type { Hono } from 'hono';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import { MAX_GITCONFIG } from '../../engine/workspaces.js';
import { createSandboxSchema, placementField } from '../../engine/schemas.js';
import type { Nodes } from '../../cluster/types.js';
import { jsonBody } from '../body.js';
import { workspaceView } from '../views.js';
import { visible, workspaceParam } from '../access.js';
import { principal } from '../principal.js';
import { forwardedByPeer, fromPeers } from '../cluster-peers.js';
import { claimName, forgetWorkspace, lostWorkspaces, noteWorkspace } from '../cluster-workspaces.js';

export const openWorkspaceSchema = z
  .object({
    name: z.string().max(64),
    /** In a cluster: which node may make it (a workspace that exists opens where it lives). */
    placement: placementField,
    /** A path inside the repository, on the daemon's host. */
    repo: z.string().min(1).max(4096).regex(/^\//, "repo must be an absolute path on the daemon's host"),
    image: z.string().max(4096).optional(),
    driver: createSandboxSchema.shape.driver.unwrap().optional(),
    network: z.enum(['none', 'all']).optional(),
    allow: createSandboxSchema.shape.allow.unwrap().optional(),
    gitconfig: z.string().max(MAX_GITCONFIG, 'gitconfig is the content of ~/.gitconfig, at most 64 KiB').optional(),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/), z.string().max(32 * 1024)).optional(),
  })
  .strict()
  .refine((o) => !(o.network && o.allow), { message: 'give network (all or none) or an allow-list, not both', path: ['allow'] });

export function workspaceRoutes(app: Hono, engine: Engine, nodes?: Nodes): void {
  // In a cluster each answer names the node the workspace lives on (its clone is on that host).
  const at = nodes?.clustered ? { node: nodes.selfId } : {};
  app.get('/v1/workspaces', async (c) => {
    const list = (await engine.workspaces.list()).filter((w) => visible(c, w.sandbox.owner)).map(workspaceView);
    // In a cluster the list is every node's, each entry naming its node.
    const here = list.map((w) => ({ ...w, ...at }));
    if (!nodes?.clustered || forwardedByPeer(c)) return c.json({ workspaces: here });
    return c.json({ workspaces: [...here, ...(await fromPeers(c, nodes, 'workspaces')), ...(await lostWorkspaces(c, nodes))] });
  });
  app.get('/v1/workspaces/:name', (c) => c.json({ ...workspaceView(workspaceParam(c)), ...at }));
  app.post('/v1/workspaces', async (c) => {
    const b = openWorkspaceSchema.parse(await jsonBody(c));
    // Where it goes was settled before (cluster-routing.ts): here.
    const { name, repo, placement: _placement, ...opts } = b;
    // git reads the repository as the caller (its uid and gid), so a workspace holds only what the caller can read.
    const who = principal(c);
    if (who.uid === null || who.gid === null) throw new Error('a workspace is opened for a known caller only (access.ts)');
    const cluster = nodes?.clustered ? nodes : undefined;
    // Names are the cluster's: one noted on another node is not made again here.
    const unclaim = cluster && !(await engine.workspaces.has(name)) ? await claimName(cluster, name, who.id) : undefined;
    const w = await engine.workspaces
      .open(name, repo, Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)), {
        uid: who.uid,
        gid: who.gid,
        owner: who.id,
      })
      .catch(async (e: unknown) => {
        await unclaim?.();
        throw e;
      });
    if (cluster) await noteWorkspace(cluster, w, w.sandbox.owner ?? who.id);
    return c.json({ ...workspaceView(w), ...at, created: w.created }, w.created ? 201 : 200);
  });
  app.delete('/v1/workspaces/:name', async (c) => {
    const w = workspaceParam(c);
    await engine.workspaces.delete(w.name);
    if (nodes?.clustered) await forgetWorkspace(nodes, w.name, w.sandbox.id);
    return c.body(null, 204);
  });
}
