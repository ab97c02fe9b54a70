/**
 * Upgrades of realm itself (upgrade/upgrades.ts). The node's admin's only (access.ts lists none
 * of these routes): a release runs as root on every node it reaches.
 */
import type { Hono } from 'hono';
import { postUpgradeSchema } from '../../upgrade/statement.js';
import type { Upgrades } from '../../upgrade/upgrades.js';
import { jsonBody } from '../body.js';

export function upgradeRoutes(app: Hono, upgrades: Upgrades): void {
  app.get('/v1/upgrades', async (c) => c.json({ nodes: await upgrades.status() }));
  app.post('/v1/upgrades', async (c) => c.json(await upgrades.post(postUpgradeSchema.parse(await jsonBody(c))), 202));
}
