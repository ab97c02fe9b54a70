/** The upgrade routes in the OpenAPI document (see openapi.ts). */
import { postUpgradeSchema } from '../upgrade/statement.js';
import type { Op } from './openapi.js';

export const UPGRADE_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/upgrades': {
    get: {
      id: 'listUpgrades',
      res: 'UpgradeStatus',
      summary: 'Each node’s release and the phase or outcome of its last upgrade (admin)',
    },
    post: {
      id: 'createUpgrade',
      body: postUpgradeSchema,
      res: 'UpgradeAccepted',
      ok: 202,
      summary:
        'Upgrade realm on the targets to a signed release (its tarball uploaded as a blob first): key trusted, signature, a version above each target’s and its platform are checked before any node is asked; each node checks again, installs the release beside the others, restarts into it and rolls back by itself when its health check fails (admin)',
    },
  },
};
