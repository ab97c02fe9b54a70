import type { Hono } from 'hono';
import { z } from 'zod';
import type { Tokens } from '../auth.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';

export const createTokenSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[\w .@-]+$/, 'token names are letters, digits, space and _ . @ -')
      .default('token'),
  })
  .strict();

export function tokenRoutes(app: Hono, tokens: Tokens): void {
  // A token belongs to, and acts as, the principal that made it: never more than its maker.
  app.post('/v1/tokens', async (c) =>
    c.json(await tokens.create(createTokenSchema.parse(await jsonBody(c)).name, principal(c).id), 201),
  );
  app.get('/v1/tokens', async (c) => c.json({ tokens: await tokens.list(principal(c).id) }));
  app.delete('/v1/tokens/:id', async (c) => {
    await tokens.revoke(c.req.param('id'), principal(c).id);
    return c.body(null, 204);
  });
}
