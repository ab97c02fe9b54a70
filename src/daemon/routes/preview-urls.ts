/**
 * Preview links of a sandbox's ports (gateway/preview.ts): `POST /v1/sandboxes/{id}/urls` makes a
 * signed, expiring link (or a public one), `GET` lists the live ones, `DELETE …/urls/{port}`
 * revokes every link to a port (and the cookies they were exchanged for).
 */
import type { Hono } from 'hono';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import type { Preview } from '../../gateway/preview.js';
import type { PreviewLink, PreviewLinks } from '../../gateway/preview-links.js';
import { refuseUnreachable } from '../../gateway/sandbox-proxy.js';
import { RealmError } from '../../util/errors.js';
import { parseDuration } from '../../util/units.js';
import { sandboxParam } from '../access.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';

/** How long a link lives unless asked otherwise. */
export const DEFAULT_LINK_TTL = '1h';

export const createUrlSchema = z
  .object({
    port: z.number().int().min(1).max(65535),
    /** `30m`, `1h`, `7d`, or milliseconds. */
    expires: z.union([z.string(), z.number()]).default(DEFAULT_LINK_TTL),
    public: z.boolean().default(false),
  })
  .strict();

const view = (preview: Preview, l: PreviewLink) => ({
  id: l.id,
  port: l.port,
  url: preview.url(l.sandbox, l.port),
  public: l.public,
  createdAt: new Date(l.createdAt).toISOString(),
  expiresAt: new Date(l.expiresAt).toISOString(),
});

export function previewUrlRoutes(app: Hono, engine: Engine, preview: Preview | undefined, links: PreviewLinks): void {
  const need = (): Preview => {
    if (!preview)
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        'this daemon serves no preview URLs: its gateway is off (realm serve --gateway HOST:PORT)',
      );
    return preview;
  };
  app.post('/v1/sandboxes/:id/urls', async (c) => {
    const p = need();
    const body = createUrlSchema.parse(await jsonBody(c));
    const ttl = parseDuration(body.expires);
    if (ttl === null || ttl <= 0)
      throw new RealmError('INVALID_REQUEST', `expires "${String(body.expires)}": write a duration such as 30m, 1h or 7d`);
    const rec = await engine.getSandbox(sandboxParam(c));
    refuseUnreachable(engine, rec);
    const { link, token } = links.create(rec.id, body.port, principal(c).id, ttl, body.public);
    // A public link needs no token: its URL is the clean one.
    return c.json({ ...view(p, link), url: p.url(rec.id, body.port, link.public ? undefined : token) }, 201);
  });
  app.get('/v1/sandboxes/:id/urls', async (c) => {
    const p = need();
    const rec = await engine.getSandbox(sandboxParam(c));
    return c.json({ urls: links.list(rec.id).map((l) => view(p, l)) });
  });
  app.delete('/v1/sandboxes/:id/urls/:port', async (c) => {
    const port = Number(c.req.param('port'));
    if (!Number.isInteger(port) || port < 1 || port > 65535)
      throw new RealmError('INVALID_REQUEST', `port "${c.req.param('port')}": a number 1-65535`);
    const rec = await engine.getSandbox(sandboxParam(c));
    return c.json({ revoked: links.revoke(rec.id, port) });
  });
}
