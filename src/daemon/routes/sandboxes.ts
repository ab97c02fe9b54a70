import type { Hono } from 'hono';
import type { Engine } from '../../engine/engine.js';
import { createSandboxSchema, execSchema, signalSchema, updateSandboxSchema } from '../../engine/schemas.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { sandboxParam, visible } from '../access.js';
import { principal } from '../principal.js';
import { jsonBody, requestSignal } from '../body.js';
import { streamOutput } from '../sse.js';
import { sandboxView } from '../views.js';
import type { Nodes } from '../../cluster/types.js';
import { forwardedByPeer, fromPeers } from '../cluster-peers.js';
import { log } from '../../logs/log.js';

function parseLabels(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new RealmError('INVALID_REQUEST', `label filter "${v}" must look like key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

/** etcd did not take the note: the sandbox is still found by asking the other nodes. */
function unrecorded(e: unknown): void {
  log.warn(`noting a sandbox in etcd: ${errorMessage(e)}`);
}

export function sandboxRoutes(app: Hono, engine: Engine, nodes?: Nodes): void {
  app.post('/v1/sandboxes', async (c) => {
    const opts = createSandboxSchema.parse(await jsonBody(c));
    const made = await engine.createSandbox(opts, false, principal(c).id);
    // In a cluster, any node finds it by one read of etcd (see cluster-routing.ts).
    const view = sandboxView(made);
    if (nodes?.clustered) await nodes.recordSandbox(made.id, made.owner ?? principal(c).id, view).catch(unrecorded);
    return c.json(view, 201);
  });

  app.get('/v1/sandboxes', async (c) => {
    const status = c.req.query('status');
    const labels = parseLabels(c.req.queries('label') ?? []);
    const list = (await engine.listSandboxes({ labels, ...(status ? { status } : {}) })).filter((s) => visible(c, s.owner));
    // In a cluster the list is every node's, each entry naming its node.
    if (!nodes?.clustered || forwardedByPeer(c)) return c.json({ sandboxes: list.map(sandboxView) });
    const here = list.map((s) => ({ ...sandboxView(s), node: nodes.selfId }));
    // Those of a node that is down, as noted when they were made: lost unless it comes back. (A
    // workspace's note by name holds the workspace, not a sandbox: cluster-workspaces.ts.)
    const lost = (await nodes.lostSandboxes().catch(() => []))
      .filter((n) => typeof n.view.id === 'string')
      .filter((n) => visible(c, n.owner) && (!status || status === 'lost'))
      .filter((n) => Object.entries(labels).every(([k, v]) => (n.view.labels as Record<string, string> | undefined)?.[k] === v))
      .map((n) => ({ ...n.view, status: 'lost', node: n.node }));
    return c.json({ sandboxes: [...here, ...(await fromPeers(c, nodes, 'sandboxes')), ...lost] });
  });

  // In a cluster it names its node, as the list does (a sandbox of another node is answered there: cluster-routing.ts).
  app.get('/v1/sandboxes/:id', async (c) => {
    const view = sandboxView(await engine.getSandbox(sandboxParam(c)));
    return c.json(nodes?.clustered ? { ...view, node: nodes.selfId } : view);
  });

  app.delete('/v1/sandboxes/:id', async (c) => {
    await engine.destroySandbox(sandboxParam(c));
    if (nodes?.clustered) await nodes.forgetSandbox(sandboxParam(c)).catch(unrecorded);
    return c.body(null, 204);
  });

  app.post('/v1/sandboxes/:id/exec', async (c) => {
    const opts = execSchema.parse(await jsonBody(c));
    return c.json(await engine.exec(sandboxParam(c), opts, undefined, requestSignal(c)));
  });

  app.post('/v1/sandboxes/:id/exec/stream', async (c) => {
    const opts = execSchema.parse(await jsonBody(c));
    const rec = await engine.getSandbox(sandboxParam(c));
    return streamOutput(c, (onData, signal) => engine.exec(rec.id, opts, onData, signal));
  });

  app.patch('/v1/sandboxes/:id', async (c) =>
    c.json(sandboxView(await engine.updateSandbox(sandboxParam(c), updateSandboxSchema.parse(await jsonBody(c))))),
  );

  app.post('/v1/sandboxes/:id/signal', async (c) => {
    await engine.signalSandbox(sandboxParam(c), signalSchema.parse(await jsonBody(c)).signal);
    return c.body(null, 204);
  });

  app.get('/v1/sandboxes/:id/network', async (c) => {
    const rec = await engine.getSandbox(sandboxParam(c));
    const view = sandboxView(rec);
    return c.json({
      network: view.network,
      allow: view.allow,
      deny: view.deny,
      inject: view.inject,
      denied: engine.networks.deniedOf(rec.id),
    });
  });

  app.post('/v1/sandboxes/:id/stop', async (c) => c.json(sandboxView(await engine.stopSandbox(sandboxParam(c)))));
  app.post('/v1/sandboxes/:id/start', async (c) => c.json(sandboxView(await engine.startSandbox(sandboxParam(c)))));
}
