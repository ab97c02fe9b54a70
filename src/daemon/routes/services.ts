/** Process services (`realm push --image`, `realm svc`): a user pushes, lists, scales, restarts and removes its own. */
import type { Hono } from 'hono';
import { streamText } from 'hono/streaming';
import type { LogEntry } from '../../services/logs.js';
import type { Services } from '../../services/services.js';
import { pushServiceSchema, scaleSchema } from '../../services/spec.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';

/** One log entry as text: each of its lines prefixed with the replica's id (and `!` for stderr, `realm` for realm's notes). */
function logText(e: LogEntry): string {
  const tag = e.stream === 'stdout' ? e.replica : e.stream === 'stderr' ? `${e.replica}!` : `${e.replica} realm`;
  const lines = e.text.endsWith('\n') ? e.text.slice(0, -1).split('\n') : e.text.split('\n');
  return lines.map((l) => `[${tag}] ${l}\n`).join('');
}

export function serviceRoutes(app: Hono, services: Services): void {
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
  app.get('/v1/services/:name/logs', (c) => {
    const logs = services.logs(c.req.param('name'), who(c));
    const follow = c.req.query('follow') === '1' || c.req.query('follow') === 'true';
    c.header('content-type', 'text/plain; charset=utf-8');
    return streamText(c, async (stream) => {
      for (const e of logs?.snapshot() ?? []) await stream.write(logText(e));
      if (!follow || !logs) return;
      await new Promise<void>((resolve) => {
        // Entries wait in order while the client takes the last one.
        let chain = Promise.resolve();
        const stop = logs.follow((e) => {
          if (e === null) return void chain.then(resolve);
          chain = chain.then(() => stream.write(logText(e)).then(() => undefined));
        });
        stream.onAbort(() => {
          stop();
          resolve();
        });
      });
    });
  });
}
