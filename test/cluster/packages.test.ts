/**
 * Packages across a cluster of two realm nodes on a real etcd: a package with static and config
 * trees deployed on node A with two replicas runs one on each node (node B gets the package from
 * A by digest and unpacks it itself), each node's gateway serves its files; v2 deployed through
 * node B (A fetching it from B) swaps the trees on both nodes by a rolling update. A package with
 * a state mount is pinned to the node it was deployed on (its volume is that node's): both its
 * replicas run there, and a new version deployed through the other node is refused naming the
 * mount's volume and node. One cluster for the whole file.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RealmError, type ServiceInfo } from '@realm/sdk';
import { createPackage } from '../../src/packages/archive.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { until } from '../helpers/until.js';
import { gatewayGet } from '../helpers/gateway-get.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster packages tests skipped: ${skip}`);

const service = (replicas = 2): string => `[service]
image = "host"
command = "exec /usr/bin/python3 -m http.server 8000 --directory /srv"
port = 8000
replicas = ${replicas}
memory = "128m"
restart = { delay = "200ms" }
health = { interval = "200ms" }
`;

/** A package directory under `root`: `files` (path → content) beside its realm-package.toml. */
function packageDir(root: string, name: string, manifest: string, files: Record<string, string>): string {
  const dir = join(root, name);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  writeFileSync(join(dir, 'realm-package.toml'), manifest);
  return dir;
}

/** The site package of `version`: a static tree and a config tree, both served from /srv. */
const site = (root: string, version: string, replicas = 2): Promise<{ bytes: Buffer; digest: string }> =>
  createPackage(
    packageDir(
      root,
      `site-${version}`,
      `name = "site"\nversion = "${version}"\n${service(replicas)}
[[mounts]]
kind = "static"
path = "/srv/site"
source = "site"
[[mounts]]
kind = "config"
path = "/srv/config"
source = "config"
`,
      { 'site/index.html': `site ${version}\n`, 'config/app.conf': `version=${version}\n` },
    ),
  );

/** A package with a state mount seeded from `seed`. */
const notes = (root: string, version: string): Promise<{ bytes: Buffer }> =>
  createPackage(
    packageDir(
      root,
      `notes-${version}`,
      `name = "notes"\nversion = "${version}"\n${service()}
[[mounts]]
kind = "state"
name = "data"
path = "/srv/state"
source = "seed"
`,
      { 'seed/count': '7\n' },
    ),
  );

const nodesOf = (s: ServiceInfo): string[] => s.replicaList.map((r) => r.node).sort();

void describe('packages across a cluster of two nodes', { skip }, () => {
  const t0 = Date.now();
  let etcd: TestEtcd;
  const nodes: TestNode[] = [];
  const gateways: number[] = [];
  let root = '';

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'realm-pkg-cluster-'));
    etcd = await startEtcd();
    gateways.push(await freePort(), await freePort());
    nodes.push(await startNode(etcd.cluster, 'pkg-a', { args: ['--gateway', `127.0.0.1:${gateways[0]}`] }));
    const invite = await nodes[0].client.nodes.invite();
    nodes.push(await startNode(etcd.cluster, 'pkg-b', { join: invite.token, args: ['--gateway', `127.0.0.1:${gateways[1]}`] }));
    console.log(`# etcd and two nodes up in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    const t1 = Date.now();
    const left: string[] = [];
    for (const n of nodes) {
      for (const s of await n.client.services.list().catch(() => []))
        await n.client.services.remove(s.name).catch(() => undefined);
      left.push(...(await n.remove()));
    }
    await etcd?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
    console.log(`# stopped and removed in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    console.log(`# test/cluster/packages.test.ts took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(left, [], 'nothing left behind');
  });

  /** The service as node `n` shows it once `ok` holds. */
  const seen = (n: TestNode, name: string, what: string, ok: (s: ServiceInfo) => boolean): Promise<ServiceInfo> =>
    until(`${what} (as node ${n.id} shows it)`, async () => {
      const s = await n.client.services.get(name);
      return ok(s) ? s : undefined;
    });

  /** Two healthy replicas of `version`, nothing else, the rollout over. */
  const serving =
    (version: string) =>
    (s: ServiceInfo): boolean =>
      s.package?.version === version &&
      s.rollout === null &&
      s.healthy === 2 &&
      s.replicaList.length === 2 &&
      s.replicaList.every((r) => r.healthy && r.generation === s.generation);

  void it('deploys a package on one node, its replicas on both serve its trees; v2 through the other node swaps them on both', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const d = await a.client.packages.deploy((await site(root, '1.0.0')).bytes);
    assert.equal(d.kind, 'process');
    const v1 = await seen(a, 'site', 'v1 healthy on both nodes', (s) => serving('1.0.0')(s) && new Set(nodesOf(s)).size === 2);
    assert.deepEqual(nodesOf(v1), ['pkg-a', 'pkg-b']);
    // Each gateway serves from its own node's replica (a replica there is healthy): both serve the trees.
    for (const port of gateways) {
      assert.deepEqual(await gatewayGet(port, '/site/site/index.html'), { status: 200, body: 'site 1.0.0\n' });
      assert.deepEqual(await gatewayGet(port, '/site/config/app.conf'), { status: 200, body: 'version=1.0.0\n' });
    }

    // v2 deployed through node B: node A gets it from B; each node replaces its replica.
    await b.client.packages.deploy((await site(root, '2.0.0')).bytes);
    const v2 = await seen(b, 'site', 'v2 rolled out on both nodes', (s) => serving('2.0.0')(s) && new Set(nodesOf(s)).size === 2);
    assert.ok(v2.generation > v1.generation);
    assert.notEqual(v2.package?.mounts[0]?.tree, v1.package?.mounts[0]?.tree);
    for (const port of gateways) {
      assert.deepEqual(await gatewayGet(port, '/site/site/index.html'), { status: 200, body: 'site 2.0.0\n' });
      assert.deepEqual(await gatewayGet(port, '/site/config/app.conf'), { status: 200, body: 'version=2.0.0\n' });
    }
    assert.equal((await a.client.services.history('site')).at(-1)?.outcome, 'rolled-out');
    await a.client.services.remove('site');
  });

  void it('pins a package with a state mount to the node it was deployed on; a new version elsewhere is refused', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const d = await b.client.packages.deploy((await notes(root, '1.0.0')).bytes);
    assert.deepEqual(d.seeded, ['svc.notes.data']);
    const s = await seen(a, 'notes', 'both replicas healthy', serving('1.0.0'));
    assert.deepEqual(nodesOf(s), ['pkg-b', 'pkg-b'], 'every replica on the node its volume is on');
    assert.deepEqual(s.placement.nodes, [{ node: 'pkg-b', replicas: 2 }]);
    assert.equal(s.package?.mounts[0]?.node, 'pkg-b');
    // Reached through node A's gateway too (relayed to B), the seeded volume behind it.
    assert.deepEqual(await gatewayGet(gateways[0], '/notes/state/count'), { status: 200, body: '7\n' });

    const refused = await a.client.packages.deploy((await notes(root, '2.0.0')).bytes).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(refused instanceof RealmError, String(refused));
    assert.equal(refused.code, 'INVALID_REQUEST');
    assert.match(refused.message, /volume svc\.notes\.data on node pkg-b.*deploy this version through node pkg-b/);
    assert.equal((await a.client.services.get('notes')).package?.version, '1.0.0', 'nothing changed');
    await b.client.services.remove('notes');
  });

  void it('a node that cannot get the package starts no replica and says why; the other serves', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    // Deployed on A with no replica, then A's copy of the package goes bad on its disk: B, given a
    // replica by the scale, has no package and no sound copy to fetch.
    const pkg = await site(root, '3.0.0', 0);
    await a.client.packages.deploy(pkg.bytes, { name: 'broken' });
    const hex = pkg.digest.replace(/^sha256:/, '');
    writeFileSync(join(a.dataDir, 'blobs', 'sha256', hex.slice(0, 2), hex), Buffer.alloc(pkg.bytes.length, 0x61));
    await a.client.services.scale('broken', 2);
    const s = await seen(a, 'broken', "B's reason, A's replica healthy", (x) => x.healthy === 1 && x.lastError !== null);
    assert.deepEqual(nodesOf(s), ['pkg-a']);
    assert.match(
      s.lastError ?? '',
      /replica broken-[0-9a-f]+ did not start: package site 3\.0\.0 \(sha256:[0-9a-f]{64}\) could not be made ready on node pkg-b: /,
    );
    console.log(`# node B's reason, as node A shows it: ${s.lastError ?? ''}`);
    assert.equal(b.proc.exitCode, null, 'node B is still up');
    assert.deepEqual(await gatewayGet(gateways[1], '/broken/site/index.html'), { status: 200, body: 'site 3.0.0\n' });
    await a.client.services.remove('broken');
  });
});
