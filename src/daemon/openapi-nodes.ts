/** The node routes in the OpenAPI document (see openapi.ts). */
import type { Op } from './openapi.js';
import { drainSchema, inviteSchema, tagSchema } from './routes/nodes.js';

export const NODE_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/nodes': {
    get: {
      id: 'listNodes',
      res: 'NodeList',
      summary:
        "Every node of the cluster (this node alone without --cluster): address, tags, state, fencing and each one's last report",
    },
  },
  '/v1/nodes/{id}': {
    get: { id: 'getClusterNode', res: 'ClusterNode', summary: 'One node of the cluster', params: ['id'] },
    delete: {
      id: 'removeNode',
      ok: 204,
      summary:
        'Forget a retired node: only one that is down (NODE_UP otherwise); its sandboxes, lost, are forgotten with it; root only',
      params: ['id'],
    },
  },
  '/v1/nodes/{id}/drain': {
    post: {
      id: 'drainNode',
      res: 'ClusterNode',
      body: drainSchema,
      summary: 'Drain a node (no new work is placed on it; what runs there goes on), or {draining: false} to take work again',
      params: ['id'],
    },
  },
  '/v1/cluster/invites': {
    post: {
      id: 'inviteNode',
      res: 'ClusterInvite',
      body: inviteSchema,
      ok: 201,
      summary:
        'A one-time token that enrolls one new node (realm serve --cluster … --join TOKEN), good for ttl (default 1h); root only',
    },
  },
  '/v1/nodes/{id}/tags': {
    post: {
      id: 'tagNode',
      res: 'ClusterNode',
      body: tagSchema,
      summary: "Add and remove a node's tags; they last until changed again (a restart with --tag replaces them)",
      params: ['id'],
    },
  },
};
