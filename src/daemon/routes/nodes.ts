import type { Hono } from 'hono';
import { z } from 'zod';
import type { Nodes } from '../../cluster/types.js';
import { jsonBody } from '../body.js';
import { durationField } from '../../engine/schemas.js';

export const drainSchema = z
  .object({
    /** false: take work again. */
    draining: z.boolean().default(true),
  })
  .strict();

export const tagSchema = z
  .object({
    add: z.array(z.string()).max(64).default([]),
    remove: z.array(z.string()).max(64).default([]),
  })
  .strict();

export const inviteSchema = z
  .object({
    /** How long the invite is good for (default 1h). */
    ttl: durationField(1000, 7 * 24 * 3_600_000).default(3_600_000),
  })
  .strict();

/** The cluster's nodes (this node alone without --cluster): any node answers for all of them. */
export function nodesRoutes(app: Hono, nodes: Nodes): void {
  app.get('/v1/nodes', async (c) => c.json({ nodes: await nodes.list() }));
  app.get('/v1/nodes/:id', async (c) => c.json(await nodes.get(c.req.param('id'))));
  // Admin only (access.ts lets users GET nodes, nothing else).
  app.delete('/v1/nodes/:id', async (c) => {
    await nodes.remove(c.req.param('id'));
    return c.body(null, 204);
  });
  app.post('/v1/nodes/:id/drain', async (c) => {
    const { draining } = drainSchema.parse(await jsonBody(c));
    return c.json(await nodes.drain(c.req.param('id'), draining));
  });
  // Admin only (access.ts: not listed, so the admin's).
  app.post('/v1/cluster/invites', async (c) => {
    const { ttl } = inviteSchema.parse(await jsonBody(c));
    return c.json(await nodes.invite(Math.ceil(ttl / 1000)), 201);
  });
  app.post('/v1/nodes/:id/tags', async (c) => {
    const { add, remove } = tagSchema.parse(await jsonBody(c));
    return c.json(await nodes.tag(c.req.param('id'), add, remove));
  });
}
