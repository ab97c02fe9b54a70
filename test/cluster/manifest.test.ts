/**
 * Signed manifests across a cluster of two realm nodes on a real etcd: the services a manifest
 * applies are the cluster's, and so are the trusted owner keys and the last version. Version 2
 * applied on node A; version 1 replayed to node B is refused as stale and changes nothing; version
 * 3 applied on B is what A shows; a manifest of another owner is refused on B once A trusted the
 * first on first use, until `realm node trust` on B trusts it for the cluster; two applies of one
 * version racing on A and B: one wins, the other is stale. The services have no replicas (their
 * records are what a manifest sets), so no sandbox runs. One cluster for the whole file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { createHash } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { RealmError, apps, type Client } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { until } from '../helpers/until.js';
import { fingerprint, generateOwnerKey, publicKeyText, signPayload } from '../../src/signing/keys.js';
import { type ManifestApp, manifestAppSchema, manifestOf } from '../../src/services/manifest-spec.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';
import { APPS } from '../../src/cluster/apps-cluster.js';
import { MANIFEST_STATE } from '../../src/cluster/manifest-state-etcd.js';
import { parseManifestToml } from '../../src/services/manifest-toml.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster manifest tests skipped: ${skip}`);

/** Version `v`'s manifest: service `web` runs `sleep V` (no replicas: nothing starts). */
const toml = (v: number): string => `[services.web]
image = "host"
command = "sleep ${v}"
port = 8000
replicas = 0
`;

interface Owner {
  privateKey: KeyObject;
  publicKey: string;
}
const owner = (): Owner => {
  const k = generateOwnerKey();
  return { privateKey: k.privateKey, publicKey: publicKeyText(k.publicKey) };
};

const apply = (c: Client, o: Owner, version: number) => {
  const manifest = manifestOf(parseManifestToml(toml(version)).services, version);
  return c.manifest.apply({ manifest, signature: signPayload(o.privateKey, manifest), publicKey: o.publicKey, version });
};

const code = (c: string) => (e: unknown) => e instanceof RealmError && e.code === c;

void describe('signed manifests across a cluster of two nodes', { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  const nodes: TestNode[] = [];
  const first = owner();
  const second = owner();

  before(async () => {
    etcd = await startEtcd();
    const a = await startNode(etcd.cluster, 'mf-a');
    nodes.push(a);
    nodes.push(await startNode(etcd.cluster, 'mf-b', { join: (await a.client.nodes.invite()).token }));
  });

  after(async () => {
    const left: string[] = [];
    for (const n of nodes) left.push(...(await n.remove()));
    await etcd?.stop();
    console.log(`# test/cluster/manifest.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(left, [], 'nothing left behind');
  });

  /** `web`'s command and the applied version as node `n` shows them, once they are `sleep V` and V. */
  const shows = (n: TestNode, v: number): Promise<true> =>
    until(`node ${n.id} shows version ${v}`, async () => {
      const [svc, st] = await Promise.all([n.client.services.get('web'), n.client.manifest.status()]);
      return svc.command === `sleep ${v}` && st.current?.version === v ? true : undefined;
    });

  void it('a version applied on one node is the last for every node: an older one replayed to another is stale', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    assert.equal((await apply(a.client, first, 2)).trusted, 'first-use');
    await until('node B has version 2’s service', async () => (await b.client.services.get('web')).command === 'sleep 2');
    await assert.rejects(apply(b.client, first, 1), code('MANIFEST_VERSION_STALE'));
    await assert.rejects(apply(b.client, first, 2), code('MANIFEST_VERSION_STALE'));
    // Nothing changed, on either node.
    for (const n of nodes) {
      assert.equal((await n.client.services.get('web')).command, 'sleep 2');
      assert.equal((await n.client.manifest.status()).current?.version, 2);
    }
    const three = await apply(b.client, first, 3);
    assert.equal(three.trusted, 'already', 'the key A trusted on first use is the cluster’s');
    assert.deepEqual(
      three.changes.map((c) => [c.name, c.change, c.fields.map((f) => f.field)]),
      [['web', 'changed', ['command']]],
    );
    await shows(a, 3);
  });

  void it('trusts owners for the cluster: another owner is refused on B until B trusts it, then A takes it too', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    await assert.rejects(apply(b.client, second, 4), code('MANIFEST_KEY_UNTRUSTED'));
    assert.deepEqual(
      (await b.client.manifest.trusted()).keys.map((k) => k.fingerprint),
      [fingerprint(first.publicKey)],
    );
    await b.client.manifest.trust(second.publicKey);
    await until('node A trusts the second owner', async () =>
      (await a.client.manifest.trusted()).keys.some((k) => k.fingerprint === fingerprint(second.publicKey)),
    );
    await apply(a.client, second, 4);
    await shows(b, 4);
  });

  void it('two applies of one version racing on two nodes: one wins, the other is stale', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const raced = await Promise.allSettled([apply(a.client, first, 5), apply(b.client, first, 5)]);
    assert.equal(raced.filter((r) => r.status === 'fulfilled').length, 1, JSON.stringify(raced));
    const lost = raced.find((r) => r.status === 'rejected');
    assert.ok(lost && code('MANIFEST_VERSION_STALE')(lost.reason), String(lost?.reason));
    for (const n of nodes) await shows(n, 5);
  });

  void it("a manifest's apps are written in the transaction of its services and state (one etcd revision), and are every node's", async (t) => {
    const wasm = await wasmSkipReason();
    if (wasm) return t.skip(wasm);
    const [a, b] = nodes as [TestNode, TestNode];
    const module = await wat(`(module (memory (export "memory") 1) (func (export "_start")))`);
    const sha256 = createHash('sha256').update(module).digest('hex');
    const entry = manifestAppSchema.parse({ sha256, memory: '32m', timeout: '5s', replicas: 1 });
    const signed = (version: number, apps: Record<string, ManifestApp>) => {
      const manifest = manifestOf(parseManifestToml(toml(version)).services, version, apps);
      return { manifest, signature: signPayload(first.privateKey, manifest), publicKey: first.publicKey, version };
    };
    const admin = new Etcd3({ hosts: etcd.cluster.replace('etcd://', 'http://') });
    try {
      const revisionOf = async (key: string): Promise<string | undefined> => (await admin.get(key).exec()).kvs[0]?.mod_revision;
      await a.client.manifest.apply({ ...signed(6, { tiny: entry }), modules: { [sha256]: module.toString('base64') } });
      const state = await revisionOf(MANIFEST_STATE);
      assert.ok(state, 'the manifest state is in etcd');
      assert.equal(await revisionOf(`${APPS}tiny`), state, "the app's record was written with the manifest's state");
      // The other node has the app from the cluster (its module fetched from a peer).
      await until('node B has the app', async () =>
        (await apps.get('tiny', b.client).catch(() => undefined))?.sha256 === sha256 ? true : undefined,
      );
      // A version without it removes it everywhere, in the same one write.
      await b.client.manifest.apply(signed(7, {}));
      assert.equal(await revisionOf(`${APPS}tiny`), undefined);
      for (const n of nodes)
        await until(`node ${n.id} no longer has the app`, async () =>
          (await apps.list(n.client)).some((x) => x.name === 'tiny') ? undefined : true,
        );
      for (const n of nodes) await shows(n, 7);
    } finally {
      admin.close();
    }
  });
});
