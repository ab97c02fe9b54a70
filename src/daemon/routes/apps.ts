import type { Hono } from 'hono';
import type { z } from 'zod';
import { type AppStats, type Apps, DEFAULT_REPLICAS, pushAppSchema } from '../../gateway/apps.js';
import type { AppRecord } from '../../store/store.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';
import type { appResponse } from '../responses.js';

function appView(a: AppRecord, stats: AppStats): z.output<typeof appResponse> {
  return {
    name: a.name,
    sha256: a.sha256,
    size: a.size,
    memory: a.memoryBytes,
    fuel: a.fuel ?? null,
    timeoutMs: a.timeoutMs,
    visibility: a.visibility,
    replicas: a.replicas ?? DEFAULT_REPLICAS,
    createdAt: new Date(a.createdAt).toISOString(),
    stats,
  };
}

/** Apps on the gateway: a user pushes, lists and removes its own (others' answer APP_NOT_FOUND). */
export function appRoutes(app: Hono, apps: Apps): void {
  const view = (a: AppRecord): z.output<typeof appResponse> => appView(a, apps.stats(a.name));
  app.post('/v1/apps', async (c) => c.json(view(await apps.push(pushAppSchema.parse(await jsonBody(c)), principal(c).id)), 201));
  app.get('/v1/apps', async (c) => c.json({ apps: (await apps.list(principal(c).id)).map(view) }));
  app.get('/v1/apps/:name', async (c) => c.json(view(await apps.get(c.req.param('name'), principal(c).id))));
  app.delete('/v1/apps/:name', async (c) => {
    await apps.remove(c.req.param('name'), principal(c).id);
    return c.body(null, 204);
  });
}
