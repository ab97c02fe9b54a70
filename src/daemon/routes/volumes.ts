import type { Hono } from 'hono';
import type { Engine } from '../../engine/engine.js';
import type { z } from 'zod';
import { visible } from '../access.js';
import type { volumeResponse } from '../responses.js';

function volumeView(v: { name: string; createdAt: number; usedBy: string[] }): z.output<typeof volumeResponse> {
  return { name: v.name, createdAt: new Date(v.createdAt).toISOString(), usedBy: v.usedBy };
}

export function volumeRoutes(app: Hono, engine: Engine): void {
  app.get('/v1/volumes', async (c) =>
    c.json({ volumes: (await engine.volumes.list()).filter((v) => visible(c, v.owner)).map(volumeView) }),
  );
  app.get('/v1/volumes/:name', async (c) => c.json(volumeView(await engine.volumes.get(c.req.param('name')))));
  app.delete('/v1/volumes/:name', async (c) => {
    await engine.volumes.remove(c.req.param('name'));
    return c.body(null, 204);
  });
}
