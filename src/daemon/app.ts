/** The HTTP API: REST under /v1, JSON, errors as `{ error: { code, message } }`. */
import { hostname } from 'node:os';
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Engine } from '../engine/engine.js';
import { createSandboxSchema, execSchema, runSchema } from '../engine/schemas.js';
import { RealmError } from '../util/errors.js';
import { errorBody, handleError } from './errors.js';
import { sandboxView } from './views.js';

export const VERSION = '0.1.0';

/** Largest request body accepted (code, files and stdin travel in it). */
const MAX_BODY = 80 * 1024 * 1024;

async function jsonBody(c: { req: { text(): Promise<string> } }): Promise<unknown> {
  const text = await c.req.text();
  if (!text.trim()) return {};
  return JSON.parse(text) as unknown;
}

function parseLabels(values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const i = v.indexOf('=');
    if (i <= 0) throw new RealmError('INVALID_REQUEST', `label filter "${v}" must look like key=value`);
    out[v.slice(0, i)] = v.slice(i + 1);
  }
  return out;
}

export function createApp(engine: Engine): Hono {
  const app = new Hono();
  app.onError(handleError);
  app.notFound((c) => c.json(errorBody('NOT_FOUND', `no route ${c.req.method} ${c.req.path}; see /v1/health, /v1/sandboxes, /v1/runs`), 404));
  app.use('*', bodyLimit({ maxSize: MAX_BODY, onError: (c) => c.json(errorBody('INVALID_REQUEST', `request body is larger than ${MAX_BODY} bytes; send less code, files or stdin`), 413) }));

  app.get('/v1/health', (c) => c.json({ status: 'ok' }));

  app.get('/v1/node', async (c) =>
    c.json({
      version: VERSION,
      platform: `${process.platform}/${process.arch === 'x64' ? 'x86_64' : process.arch}`,
      hostname: hostname(),
      dataDir: engine.config.dataDir,
      sandboxes: engine.liveCount,
      drivers: await engine.fingerprint(),
    }),
  );

  app.get('/v1/languages', async (c) => c.json({ languages: await engine.languages.list() }));

  app.post('/v1/runs', async (c) => {
    const opts = runSchema.parse(await jsonBody(c));
    return c.json(await engine.run(opts, undefined, c.req.raw.signal));
  });

  app.post('/v1/sandboxes', async (c) => {
    const opts = createSandboxSchema.parse(await jsonBody(c));
    return c.json(sandboxView(await engine.createSandbox(opts)), 201);
  });

  app.get('/v1/sandboxes', async (c) => {
    const status = c.req.query('status');
    const labels = parseLabels(c.req.queries('label') ?? []);
    const list = await engine.listSandboxes({ labels, ...(status ? { status } : {}) });
    return c.json({ sandboxes: list.map(sandboxView) });
  });

  app.get('/v1/sandboxes/:id', async (c) => c.json(sandboxView(await engine.getSandbox(c.req.param('id')))));

  app.delete('/v1/sandboxes/:id', async (c) => {
    await engine.destroySandbox(c.req.param('id'));
    return c.body(null, 204);
  });

  app.post('/v1/sandboxes/:id/exec', async (c) => {
    const opts = execSchema.parse(await jsonBody(c));
    return c.json(await engine.exec(c.req.param('id'), opts, undefined, c.req.raw.signal));
  });

  app.post('/v1/sandboxes/:id/stop', async (c) => c.json(sandboxView(await engine.stopSandbox(c.req.param('id')))));
  app.post('/v1/sandboxes/:id/start', async (c) => c.json(sandboxView(await engine.startSandbox(c.req.param('id')))));

  app.get('/v1/volumes', async (c) => c.json({ volumes: (await engine.listVolumes()).map(volumeView) }));
  app.get('/v1/volumes/:name', async (c) => c.json(volumeView(await engine.getVolume(c.req.param('name')))));
  app.delete('/v1/volumes/:name', async (c) => {
    await engine.removeVolume(c.req.param('name'));
    return c.body(null, 204);
  });

  return app;
}

function volumeView(v: { name: string; createdAt: number; usedBy: string[] }) {
  return { name: v.name, createdAt: new Date(v.createdAt).toISOString(), usedBy: v.usedBy };
}
