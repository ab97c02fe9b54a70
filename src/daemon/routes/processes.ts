/** Background processes: start detached, list, follow output (SSE, replayed then live), stdin, signal, kill. */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Engine } from '../../engine/engine.js';
import { processInputSchema, signalSchema, startProcessSchema } from '../../engine/schemas.js';
import { jsonBody } from '../body.js';

export function processRoutes(app: Hono, engine: Engine): void {
  const base = '/v1/sandboxes/:id/processes';
  const sandboxId = async (idOrName: string): Promise<string> => (await engine.getSandbox(idOrName)).id;

  app.post(base, async (c) => c.json(await engine.startProcess(c.req.param('id'), startProcessSchema.parse(await jsonBody(c))), 201));
  app.get(base, async (c) => c.json({ processes: engine.processes.list(await sandboxId(c.req.param('id'))) }));
  app.get(`${base}/:pid`, async (c) => c.json(engine.processes.info(await sandboxId(c.req.param('id')), c.req.param('pid'))));

  app.get(`${base}/:pid/output`, async (c) => {
    const sb = await sandboxId(c.req.param('id'));
    const pid = c.req.param('pid');
    engine.processes.info(sb, pid); // PROCESS_NOT_FOUND before the stream starts
    return streamSSE(c, async (stream) => {
      let queue: Promise<void> = Promise.resolve();
      const send = (event: string, data: unknown): void => {
        queue = queue.then(() => stream.writeSSE({ event, data: JSON.stringify(data) })).catch(() => undefined);
      };
      await new Promise<void>((resolve) => {
        const stop = engine.processes.follow(sb, pid, (chunk) => send(chunk.stream, { data: chunk.data.toString('utf8'), offset: chunk.offset }), (exit) => {
          send('exit', exit);
          resolve();
        });
        stream.onAbort(() => {
          stop();
          resolve();
        });
      });
      await queue;
    });
  });

  app.post(`${base}/:pid/stdin`, async (c) => {
    const b = processInputSchema.parse(await jsonBody(c));
    engine.processes.write(await sandboxId(c.req.param('id')), c.req.param('pid'), b.data, b.close);
    return c.body(null, 204);
  });

  app.post(`${base}/:pid/signal`, async (c) => {
    const b = signalSchema.parse(await jsonBody(c));
    engine.processes.signal(await sandboxId(c.req.param('id')), c.req.param('pid'), b.signal);
    return c.body(null, 204);
  });

  app.delete(`${base}/:pid`, async (c) => {
    await engine.processes.kill(await sandboxId(c.req.param('id')), c.req.param('pid'));
    return c.body(null, 204);
  });
}
