import type { Hono } from 'hono';
import { z } from 'zod';
import type { Tokens } from '../auth.js';
import { jsonBody } from '../body.js';

const createSchema = z.object({ name: z.string().min(1).max(64).regex(/^[\w .@-]+$/, 'token names are letters, digits, space and _ . @ -').default('token') }).strict();

export function tokenRoutes(app: Hono, tokens: Tokens): void {
  app.post('/v1/tokens', async (c) => c.json(await tokens.create(createSchema.parse(await jsonBody(c)).name), 201));
  app.get('/v1/tokens', async (c) => c.json({ tokens: await tokens.list() }));
  app.delete('/v1/tokens/:id', async (c) => {
    await tokens.revoke(c.req.param('id'));
    return c.body(null, 204);
  });
}
