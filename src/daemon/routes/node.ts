import { hostname } from 'node:os';
import type { Hono } from 'hono';
import type { Engine } from '../../engine/engine.js';
import { VERSION } from '../../version.js';
import { openapiDocument } from '../openapi.js';
import type { Nodes } from '../../cluster/types.js';
import { tracingState } from '../../telemetry/trace.js';

/** This node in its cluster; its tags as last known (none when etcd does not answer: fenced says why). */
async function clusterOf(
  nodes: Nodes,
): Promise<{ id: string; clustered: boolean; fenced: boolean; tags: string[]; scheduler: string | null }> {
  const self = nodes.fenced ? undefined : await nodes.get(nodes.selfId).catch(() => undefined);
  const scheduler = nodes.fenced ? null : await nodes.scheduler().catch(() => null);
  return { id: nodes.selfId, clustered: nodes.clustered, fenced: nodes.fenced, tags: self?.tags ?? [], scheduler };
}

export { VERSION } from '../../version.js';

/** `anonymous`: the route groups TCP callers may use without a token (`--anonymous`), shown so `realm doctor` can warn. */
export function nodeRoutes(
  app: Hono,
  engine: Engine,
  nodes: Nodes,
  anonymous: readonly string[] = [],
  warnings: readonly string[] = [],
): void {
  app.get('/v1/health', (c) => c.json({ status: 'ok' }));

  app.get('/v1/node', async (c) =>
    c.json({
      version: VERSION,
      platform: `${process.platform}/${process.arch === 'x64' ? 'x86_64' : process.arch}`,
      hostname: hostname(),
      dataDir: engine.config.dataDir,
      sandboxes: engine.liveCount,
      drivers: await engine.fingerprint(),
      imageBuilds: engine.builder.capability(),
      anonymous,
      warnings,
      egress: {
        networkAll: engine.config.networkAllRefused ?? 'public internet only',
        allowPrivate: engine.config.allowPrivate ?? [],
      },
      cluster: await clusterOf(nodes),
      tracing: tracingState(),
    }),
  );

  app.get('/v1/openapi.json', (c) => c.json(openapiDocument()));

  app.get('/v1/languages', async (c) => c.json({ languages: await engine.languages.list() }));
}
