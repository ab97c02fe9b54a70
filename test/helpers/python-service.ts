/**
 * A test daemon with a gateway and one process service running a python script (a replica
 * server on 127.0.0.1:8000): started in `before`, the service healthy; in `after` the service
 * removed, nothing left behind, the daemon closed. For suites that talk to one replica through
 * the gateway (the fast lane, its relay thread).
 */
import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { leftovers, removeTestDirs, startTestDaemon, type TestDaemon } from './daemon.js';
import { until } from './until.js';

export interface PythonService {
  /** The daemon (set once `before` ran). */
  readonly t: TestDaemon;
  /** The gateway's URL. */
  readonly gw: string;
}

/** Register the hooks (call inside a describe whose `skip` is `skip`). */
export function pythonService(name: string, script: string, skip: string | undefined): PythonService {
  const s: { t?: TestDaemon; gw: string } = { gw: '' };
  before(async () => {
    if (skip) return;
    const t = (s.t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' }));
    s.gw = t.daemon.gatewayUrl ?? '';
    await t.client.services.push({
      name,
      image: 'host',
      command: `cat > s.py <<'PY'\n${script}\nPY\nexec /usr/bin/python3 s.py`,
      port: 8000,
    });
    await until('the service healthy', async () => (await t.client.services.get(name)).healthy === 1, 60_000);
  });
  after(async () => {
    const t = s.t;
    if (!t) return;
    await t.client.services.remove(name).catch(() => undefined);
    assert.deepEqual(await leftovers(t), []);
    await t.close();
    removeTestDirs(t);
  });
  return {
    get t(): TestDaemon {
      if (!s.t) throw new Error('the daemon is not started (before() did not run)');
      return s.t;
    },
    get gw(): string {
      return s.gw;
    },
  };
}
