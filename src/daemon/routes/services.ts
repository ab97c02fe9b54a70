/** Process services (`realm push --image`, `realm svc`): a user pushes, lists, scales, restarts and removes its own. */
import type { Context, Hono } from 'hono';
import { forward } from '../../cluster/forward.js';
import type { Nodes } from '../../cluster/types.js';
import { streamText } from 'hono/streaming';
import type { LogEntry } from '../../services/logs.js';
import type { Services } from '../../services/services.js';
import { pushServiceSchema, scaleSchema } from '../../services/spec.js';
import { jsonBody, requestSignal } from '../body.js';
import { forwardedByPeer, toPeer } from '../cluster-peers.js';
import { principal } from '../principal.js';

/** One log entry as text: each of its lines prefixed with the replica's id (and `!` for stderr, `realm` for realm's notes). */
function logText(e: LogEntry): string {
  const tag = e.stream === 'stdout' ? e.replica : e.stream === 'stderr' ? `${e.replica}!` : `${e.replica} realm`;
  const lines = e.text.endsWith('\n') ? e.text.slice(0, -1).split('\n') : e.text.split('\n');
  return lines.map((l) => `[${tag}] ${l}\n`).join('');
}

/** `nodes`: in a cluster, a service's logs are read from every node that runs replicas of it. */
export function serviceRoutes(app: Hono, services: Services, nodes?: Nodes): void {
  const who = (c: Parameters<typeof principal>[0]): string => principal(c).id;
  app.post('/v1/services', async (c) => {
    const rec = await services.push(pushServiceSchema.parse(await jsonBody(c)), who(c));
    return c.json(services.view(rec), 201);
  });
  app.get('/v1/services', (c) => c.json({ services: services.desired.list(who(c)).map((r) => services.view(r)) }));
  app.get('/v1/services/:name', (c) => c.json(services.view(services.desired.get(c.req.param('name'), who(c)))));
  app.post('/v1/services/:name/scale', async (c) => {
    const { replicas } = scaleSchema.parse(await jsonBody(c));
    return c.json(services.view(await services.desired.scale(c.req.param('name'), replicas, who(c))));
  });
  app.get('/v1/services/:name/history', (c) => c.json(services.history(c.req.param('name'), who(c))));
  app.post('/v1/services/:name/restart', async (c) =>
    c.json(services.view(await services.desired.restart(c.req.param('name'), who(c)))),
  );
  app.delete('/v1/services/:name', async (c) => {
    await services.remove(c.req.param('name'), who(c));
    return c.body(null, 204);
  });
  app.get('/v1/services/:name/logs', async (c) => {
    const name = c.req.param('name');
    const logs = services.logs(name, who(c));
    const follow = c.req.query('follow') === '1' || c.req.query('follow') === 'true';
    // In a cluster, the replicas of the other nodes that report some: their logs are kept there.
    const remote = await peerLogs(c, services, nodes, name, follow);
    c.header('content-type', 'text/plain; charset=utf-8');
    return streamText(c, async (stream) => {
      // Entries wait in order while the client takes the last one.
      let chain = Promise.resolve();
      const write = (text: string): void => {
        chain = chain.then(() => stream.write(text).then(() => undefined));
      };
      for (const e of logs?.snapshot() ?? []) write(logText(e));
      const peers = remote.map((res) => lines(res, write));
      if (!follow) {
        await Promise.all(peers);
        return void (await chain);
      }
      await new Promise<void>((resolve) => {
        const stop = logs
          ? logs.follow((e) => {
              if (e === null) return void chain.then(resolve);
              write(logText(e));
            })
          : () => undefined;
        if (!logs) void Promise.all(peers).then(() => chain.then(resolve));
        stream.onAbort(() => {
          stop();
          for (const res of remote) void res.body?.cancel().catch(() => undefined);
          resolve();
        });
      });
    });
  });
}

/** The other nodes' answers for this service's logs (those that run replicas of it); none on a node alone or for a peer's request. */
async function peerLogs(
  c: Context,
  services: Services,
  nodes: Nodes | undefined,
  name: string,
  follow: boolean,
): Promise<Response[]> {
  if (!nodes?.clustered || !services.cluster || forwardedByPeer(c)) return [];
  const ids = new Set(services.cluster.others(name).map(([node]) => node));
  const peers = (await nodes.list()).filter((n) => ids.has(n.id) && n.state !== 'down');
  const path = `/v1/services/${encodeURIComponent(name)}/logs${follow ? '?follow=1' : ''}`;
  const answers = await Promise.all(
    peers.map((n) =>
      forward({
        ...toPeer(nodes, n, path, principal(c).id),
        method: 'GET',
        headers: new Headers(),
        signal: requestSignal(c),
      }).catch(() => null),
    ),
  );
  return answers.filter((r): r is Response => r !== null && r.ok);
}

/** A peer's log text passed on in whole lines (so lines of several nodes never mix). */
async function lines(res: Response, write: (text: string) => void): Promise<void> {
  if (!res.body) return;
  const decoder = new TextDecoder();
  let held = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      held += decoder.decode(chunk, { stream: true });
      const end = held.lastIndexOf('\n');
      if (end < 0) continue;
      write(held.slice(0, end + 1));
      held = held.slice(end + 1);
    }
  } catch {
    // The peer went away or the client left: what came is passed on.
  }
  if (held) write(`${held}\n`);
}
