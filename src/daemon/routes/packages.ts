/** Packages (`realm package deploy`): a `.realm` file in the blob store becomes a service with its mounts. */
import type { Hono } from 'hono';
import { z } from 'zod';
import type { Packages } from '../../packages/deploy.js';
import type { Services } from '../../services/services.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';

export const deployPackageSchema = z
  .object({
    /** The `.realm` file's digest in the blob store (`realm blob put`, or the SDK's packages.deploy). */
    digest: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'digest is sha256:<64 hex digits>'),
    /** The service's name (default: the package's name). */
    name: z.string().max(256).optional(),
  })
  .strict();

export function packageRoutes(app: Hono, packages: Packages, services: Services): void {
  app.post('/v1/packages', async (c) => {
    const { digest, name } = deployPackageSchema.parse(await jsonBody(c));
    const d = await packages.deploy(digest, principal(c).id, name);
    return c.json({ ...d, service: d.service ? services.view(d.service) : null }, 201);
  });
}
