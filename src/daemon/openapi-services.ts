/** The service routes in the OpenAPI document (see openapi.ts). */
import { pushServiceSchema, scaleSchema } from '../services/spec.js';
import type { Op } from './openapi.js';
import { deployPackageSchema } from './routes/packages.js';

export const SERVICE_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/services': {
    get: {
      id: 'listServices',
      res: 'ServiceList',
      summary:
        "The caller's process services (on a cluster: the cluster's, with every node's replicas), with their replicas' state and placement",
    },
    post: {
      id: 'pushService',
      body: pushServiceSchema,
      res: 'Service',
      ok: 201,
      summary:
        'Start or update process service NAME: replicas of COMMAND (sh -c, in the sandbox user home) in namespace sandboxes of IMAGE, each listening on PORT, served at the gateway (/NAME/…); an update rolls out one replica at a time and rolls back when a new one fails its health check',
    },
  },
  '/v1/services/{name}': {
    get: {
      id: 'getService',
      res: 'Service',
      summary: 'One service: desired and running replicas (each with its node), placement, health, restarts, last error',
      params: ['name'],
    },
    delete: {
      id: 'removeService',
      ok: 204,
      summary:
        'Remove a service: every replica, its sandbox and processes, go before the answer (on a cluster: those of the node asked; the other nodes stop theirs within seconds)',
      params: ['name'],
    },
  },
  '/v1/services/{name}/scale': {
    post: {
      id: 'scaleService',
      body: scaleSchema,
      res: 'Service',
      summary: 'Set the desired number of replicas',
      params: ['name'],
    },
  },
  '/v1/services/{name}/restart': {
    post: {
      id: 'restartService',
      res: 'Service',
      summary:
        'Replace every replica, one at a time (a new generation of the same spec, rolled back if a new replica fails its health check)',
      params: ['name'],
    },
  },
  '/v1/services/{name}/history': {
    get: {
      id: 'serviceHistory',
      res: 'ServiceHistory',
      summary:
        "The service's generations, oldest first: spec digest, when, by whom, and how each rollout ended (rolled-out, rolled-back with the reason, ...)",
      params: ['name'],
    },
  },
  '/v1/packages': {
    post: {
      id: 'deployPackage',
      body: deployPackageSchema,
      res: 'PackageDeployment',
      ok: 201,
      summary:
        'Deploy a package (a .realm file uploaded to the blob store) as service NAME (default: the package name): unpacked in a sandbox, static/config trees stored once per content digest and mounted read-only, state volumes seeded on the first deploy only; an upgrade replaces the replicas',
    },
  },
  '/v1/services/{name}/logs': {
    get: {
      id: 'serviceLogs',
      res: 'text',
      summary: "The replicas' output (each line prefixed with its replica's id) and realm's notes; follow=1 streams on",
      params: ['name'],
      query: ['follow'],
    },
  },
};
