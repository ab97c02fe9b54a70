/**
 * The daemon's data at rest: a local user who is not root reads nothing of the data dir (its
 * listing, the state database and its WAL, the log, the admin token, the pid file, the key), and
 * a secret a sandbox's proxy injects is not in the database's bytes in clear.
 *
 * The daemon is the one the CLI starts in the background (the way most users get one), so its
 * log is the real one. The sandbox holding the secret runs on the test driver (REALM_TEST_DRIVER). The "attacker" is an unprivileged local user on the host: `node -e` run
 * as nobody (65534) and as the sandbox uid, each with no supplementary groups.
 *
 * Driver-independent (test/hostile/daemon/, run once per `npm test`): the data dir's modes and the
 * sealing of injected values are the daemon's and its store's, and no driver is ever handed an
 * injected value (DriverSandboxSpec has no field for one), so no driver can write it anywhere.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Client, Sandbox } from '@realm/sdk';
import { realm } from '../../helpers/cli.js';
import { TEST_DRIVER, TEST_UID_RANGE, hostUidOf, leftovers, removeTestDirs, testDriverSkipReason } from '../../helpers/daemon.js';
import { freePort } from '../../helpers/port.js';
import { stopBackgroundDaemon } from '../../helpers/spawned-daemon.js';
import { nonce } from '../common.js';

const skip = await testDriverSkipReason();

/** What uid `uid` gets trying to list `dir` and read each file: 'OK' or the errno code, by name. */
/** What `uid` (with the supplementary `groups`, as a sandbox's uid has) gets of the data dir. */
function tryAs(uid: number, dir: string, files: string[], groups: number[] = []): Record<string, string> {
  const program = `const fs = require('fs'); const out = {};
const attempt = (name, fn) => { try { fn(); out[name] = 'OK'; } catch (e) { out[name] = e.code || String(e); } };
attempt('list', () => fs.readdirSync(${JSON.stringify(dir)}));
for (const f of ${JSON.stringify(files)}) attempt(f, () => fs.readFileSync(require('path').join(${JSON.stringify(dir)}, f)));
console.log(JSON.stringify(out));`;
  const ids = [
    '--reuid',
    String(uid),
    '--regid',
    String(uid),
    ...(groups.length ? ['--groups', groups.join(',')] : ['--clear-groups']),
  ];
  const r = spawnSync('/usr/bin/setpriv', [...ids, process.execPath, '-e', program], {
    encoding: 'utf8',
    cwd: '/',
    env: {},
    timeout: 30_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, string>;
}

void test(
  'a local user reads nothing of the data dir, and injected secrets are not in the database in clear',
  { skip },
  async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-rest-'));
    const cgroupRoot = `realm-test-rest-${process.pid}`;
    const url = `http://127.0.0.1:${await freePort()}`;
    const env = {
      REALM_DATA_DIR: dataDir,
      REALM_CGROUP_ROOT: cgroupRoot,
      REALM_URL: url,
      REALM_UID_RANGE: `${TEST_UID_RANGE.first}:${TEST_UID_RANGE.count}`,
      ...(TEST_DRIVER === 'microvm' ? { REALM_MICROVM_ALLOW_EMULATION: '1' } : {}),
    };
    let client: Client | undefined;
    try {
      const started = await realm(['sandbox', 'ls'], { env });
      assert.match(started.stderr, /started the daemon in the background/, started.stderr);
      client = new Client({ url, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() });
      const secret = `injected-${nonce()}`;
      const sb = await Sandbox.create(
        { driver: TEST_DRIVER, allow: ['example.com'], inject: [{ host: 'example.com', header: 'X-Key', value: secret }] },
        client,
      );
      // The API shows where headers go, never their values.
      const net = await (
        await fetch(`${url}/v1/sandboxes/${sb.id}/network`, { headers: { authorization: `Bearer ${client.token ?? ''}` } })
      ).text();
      assert.match(net, /X-Key/);
      assert.ok(!net.includes(secret), net);
      assert.ok(!JSON.stringify(await Sandbox.get(sb.id, client)).includes(secret));

      const files = [
        'state.db',
        'state.db-wal',
        'state.db-shm',
        'daemon.log',
        'admin-token',
        'daemon.json',
        ...(existsSync(join(dataDir, 'secret.key')) ? ['secret.key'] : []),
      ];
      for (const f of files) assert.ok(existsSync(join(dataDir, f)), `${f} is there to be read`);
      // Any local user; the sandbox's own host uid with the group every sandbox uid carries (it may
      // pass through the data dir, never list it or read what is in it).
      for (const [uid, groups] of [
        [65534, []],
        [hostUidOf({ dataDir }, sb.id), [TEST_UID_RANGE.first + 1]],
      ] as const) {
        const got = tryAs(uid, dataDir, files, [...groups]);
        assert.deepEqual(
          got,
          Object.fromEntries(['list', ...files].map((f) => [f, 'EACCES'])),
          `uid ${uid} (groups ${groups.join(',') || 'none'}) got into the data dir`,
        );
      }

      // The database's bytes, its WAL included, hold no secret in clear.
      const bytes = Buffer.concat(['state.db', 'state.db-wal'].map((f) => readFileSync(join(dataDir, f))));
      assert.ok(!bytes.includes(secret), 'the injected secret is in state.db or its WAL in clear');
      assert.ok(!readFileSync(join(dataDir, 'daemon.log')).includes(secret), 'the injected secret is in the log');
    } finally {
      // Sandboxes outlive their daemon by design: destroy them first.
      for (const s of client ? await Sandbox.list({}, client).catch(() => []) : [])
        await (await Sandbox.get(s.id, client)).destroy().catch(() => undefined);
      await stopBackgroundDaemon(dataDir);
      assert.deepEqual(await leftovers({ dataDir, cgroupRoot }), []);
      removeTestDirs({ dataDir, cgroupRoot });
    }
  },
);
