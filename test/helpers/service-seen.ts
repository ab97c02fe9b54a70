/** What the cluster services tests share: a python http.server replica's spec, and a service as one node shows it. */
import type { ServiceInfo } from '@realm/sdk';
import type { TestNode } from './cluster.js';
import { until } from './until.js';

/** A process service: python's http.server on 8000 serving hello.txt, checked and restarted quickly. */
export const PYTHON_REPLICA = {
  image: 'host',
  command: 'echo hello from a replica > hello.txt && exec /usr/bin/python3 -m http.server 8000',
  port: 8000,
  health: { interval: '200ms' },
  restart: { delay: '200ms' },
};

/** The service as node `n` shows it, once `ok` holds. */
export const serviceSeen = (n: TestNode, name: string, what: string, ok: (s: ServiceInfo) => boolean): Promise<ServiceInfo> =>
  until(`${what} (as node ${n.id} shows it)`, async () => {
    const s = await n.client.services.get(name);
    return ok(s) ? s : undefined;
  });
