/**
 * Signed manifests and the owner keys a node trusts (services/manifest.ts). All of it is the
 * node's admin's (access.ts lists none of these routes, so they are closed to other users):
 * a manifest sets the node's desired state, and trust decides whose manifests it takes.
 */
import type { Hono } from 'hono';
import { applyManifestSchema, diffManifestSchema, trustKeySchema, type Manifests } from '../../services/manifest.js';
import { RealmError } from '../../util/errors.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';

export function manifestRoutes(app: Hono, manifests: Manifests): void {
  app.get('/v1/manifest', async (c) => c.json(await manifests.status()));
  app.post('/v1/manifest', async (c) => {
    const body = applyManifestSchema.parse(await jsonBody(c));
    return c.json(await manifests.apply(body, principal(c).id));
  });
  app.post('/v1/manifest/diff', async (c) => c.json(await manifests.diff(diffManifestSchema.parse(await jsonBody(c)))));
  app.get('/v1/trust', async (c) => c.json(await manifests.trustList()));
  app.post('/v1/trust', async (c) => {
    const { publicKey } = trustKeySchema.parse(await jsonBody(c));
    return c.json(await manifests.trust(publicKey), 201);
  });
  app.delete('/v1/trust', async (c) => {
    const key = c.req.query('key');
    if (!key) throw new RealmError('INVALID_REQUEST', 'say which key to revoke: ?key=FINGERPRINT or ?key=realm-ed25519:…');
    return c.json(await manifests.revoke(key));
  });
}
