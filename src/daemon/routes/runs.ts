import type { Hono } from 'hono';
import type { Engine } from '../../engine/engine.js';
import { runSchema } from '../../engine/schemas.js';
import { jsonBody, requestSignal } from '../body.js';
import { streamOutput } from '../sse.js';
import { principal } from '../principal.js';

export function runRoutes(app: Hono, engine: Engine): void {
  app.post('/v1/runs', async (c) => {
    const opts = runSchema.parse(await jsonBody(c));
    return c.json(await engine.run(opts, undefined, requestSignal(c), { owner: principal(c).id }));
  });

  app.post('/v1/runs/stream', async (c) => {
    const opts = runSchema.parse(await jsonBody(c));
    engine.language(opts.language); // an unknown language is a 404, before the stream starts
    return streamOutput(c, (onData, signal) => engine.run(opts, onData, signal, { owner: principal(c).id }));
  });
}
