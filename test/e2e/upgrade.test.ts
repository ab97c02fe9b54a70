/**
 * The upgrade routes on a daemon in-process (what it can answer without restarting itself): the
 * status of a node never upgraded, the routes closed to users, and the refusals that come before
 * anything is installed — an untrusted key, a statement changed after signing, a statement that
 * is not a release, another platform, a package never uploaded — and, for a daemon that runs
 * inside another program, UPGRADE_UNSUPPORTED. The upgrades themselves (restart, rollback) are in
 * test/cluster/upgrade.test.ts, on nodes that are `realm serve` processes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RealmError } from '@realm/sdk';
import { PLATFORM } from '../../src/cluster/report.js';
import { createKeyFile, type OwnerKey } from '../../src/signing/key-file.js';
import { signPayload } from '../../src/signing/keys.js';
import { releaseStatement } from '../../src/upgrade/statement.js';
import {
  leftovers,
  userClient,
  namespaceSkipReason,
  removeTestDirs,
  startTestDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping upgrade route tests: ${skip}`);

const refusedWith = (code: string) => (e: unknown) => e instanceof RealmError && e.code === code;

void describe('upgrade routes', { skip }, () => {
  let t: TestDaemon;
  let keys: string;
  let key: OwnerKey;
  let digest: string;

  before(async () => {
    t = await startTestDaemon();
    keys = mkdtempSync(join(tmpdir(), 'realm-test-upgrade-keys-'));
    key = createKeyFile(join(keys, 'owner.key'));
    await t.client.manifest.trust(key.publicKey);
    const bytes = Buffer.from('not really a release');
    digest = (await t.client.blobs.put(bytes)).digest;
    assert.equal(digest, `sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  });

  after(async () => {
    rmSync(keys, { recursive: true, force: true });
    if (!t) return;
    assert.deepEqual(await leftovers(t), []);
    await t.close();
    removeTestDirs(t);
  });

  const signed = (over: Partial<ReturnType<typeof releaseStatement>> = {}, signer = key) => {
    const statement = { ...releaseStatement({ version: 1, digest, platform: PLATFORM, owner: signer.publicKey }), ...over };
    return { statement, signature: signPayload(signer.privateKey, statement) };
  };

  void it('lists this node, never upgraded', async () => {
    const { nodes } = await t.client.upgrades.status();
    assert.equal(nodes.length, 1);
    assert.equal(nodes[0]?.version, 0);
    assert.equal(nodes[0]?.platform, PLATFORM);
    assert.equal(nodes[0]?.last, null);
  });

  void it("is the node's admin's", async () => {
    const user = await userClient(t, 'uid:4201');
    await assert.rejects(user.upgrades.status(), refusedWith('FORBIDDEN'));
    await assert.rejects(user.upgrades.create(signed()), refusedWith('FORBIDDEN'));
  });

  void it('refuses what is not a sound release of a trusted key, installing nothing', async () => {
    const stranger = createKeyFile(join(keys, 'stranger.key'));
    await assert.rejects(t.client.upgrades.create(signed({}, stranger)), refusedWith('UPGRADE_KEY_UNTRUSTED'));
    const s = signed();
    await assert.rejects(
      t.client.upgrades.create({ ...s, statement: { ...s.statement, version: 2 } }),
      refusedWith('UPGRADE_SIGNATURE'),
    );
    // Signed, but a manifest's kind: a signature made for one kind never passes as another.
    await assert.rejects(t.client.upgrades.create(signed({ kind: 'realm-manifest' } as never)), refusedWith('UPGRADE_INVALID'));
    await assert.rejects(t.client.upgrades.create(signed({ platform: 'linux/riscv64' })), refusedWith('UPGRADE_PLATFORM'));
    await assert.rejects(t.client.upgrades.create(signed({ digest: `sha256:${'0'.repeat(64)}` })), refusedWith('BLOB_NOT_FOUND'));
    // Sound, but this daemon runs in the test's process, which it cannot restart.
    await assert.rejects(t.client.upgrades.create(signed()), refusedWith('UPGRADE_UNSUPPORTED'));
    assert.equal(existsSync(join(t.dataDir, 'releases', 'versions')), false);
    assert.equal((await t.client.upgrades.status()).nodes[0]?.last, null);
  });
});
