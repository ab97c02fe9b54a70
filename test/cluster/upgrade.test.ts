/**
 * Upgrading realm itself on two nodes of a cluster (real etcd, nodes as processes). Two releases
 * are built here from this tree (its dist, with package.json's version changed): release 1,
 * sound, and release 2, whose daemon fails to start. Release 1 is installed on both nodes by
 * `realm upgrade` (each restarts into it from `<data-dir>/releases/current`, and a sandbox made
 * before is still there and answers); release 1 again is refused (downgrade), a statement changed
 * after signing is refused, as are an untrusted key and another platform, each leaving nothing
 * installed, and a key revoked on one node is revoked for the cluster (trust is the cluster's):
 * the other node refuses a release it signs, asking no node; release 2 on one node is rolled back
 * by that node itself.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type Client, type RealmError, type RealmEvent, Sandbox, events } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { PLATFORM } from '../../src/cluster/report.js';
import { createKeyFile, type OwnerKey } from '../../src/signing/key-file.js';
import { signPayload } from '../../src/signing/keys.js';
import { releaseStatement } from '../../src/upgrade/statement.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { realm } from '../helpers/cli.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# upgrade tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;

/** A release tarball of this tree's build with package.json's version set; `broken`: its daemon throws at start. */
async function buildRelease(dir: string, name: string, version: string, broken = false): Promise<string> {
  const tree = join(dir, name);
  for (const part of ['dist/src', 'build/native', 'languages', 'images', 'bin'])
    cpSync(join(PACKAGE_ROOT, part), join(tree, part), { recursive: true });
  const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(tree, 'package.json'), JSON.stringify({ ...pkg, version }, null, 2));
  if (broken) {
    const serve = join(tree, 'dist/src/daemon/serve.js');
    writeFileSync(serve, `throw new Error('release ${version} is broken on purpose');\n${readFileSync(serve, 'utf8')}`);
  }
  const out = join(dir, `${name}.tgz`);
  await exec('tar', ['-C', tree, '-czf', out, '.']);
  rmSync(tree, { recursive: true, force: true });
  return out;
}

/** The pid of the daemon running in `node`'s data dir now (the process the hand-over left). */
function daemonPid(node: TestNode): number {
  return (JSON.parse(readFileSync(join(node.dataDir, 'daemon.json'), 'utf8')) as { pid: number }).pid;
}

async function waitFor(what: string, ok: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await ok().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${what}: not within ${ms / 1000} s`);
}

/** Stop the daemon that runs in the node's data dir now (a hand-over's successor is not the harness's child). */
async function stopDaemon(node: TestNode): Promise<void> {
  if (!existsSync(join(node.dataDir, 'daemon.json'))) return;
  const pid = daemonPid(node);
  if (pid === node.proc.pid) return; // the harness's own child: node.remove() stops it
  const list = await node.client.request<{ sandboxes: { id: string; node?: string }[] }>('GET', '/v1/sandboxes').then(
    (r) => r.sandboxes,
    () => [],
  );
  for (const sb of list.filter((x) => x.node === undefined || x.node === node.id))
    await node.client.request('DELETE', `/v1/sandboxes/${sb.id}`).catch(() => undefined);
  process.kill(pid, 'SIGTERM');
  await waitFor(`daemon ${pid} to exit`, () => Promise.resolve(!existsSync(`/proc/${pid}`)), 30_000);
}

/** The `upgrade.*` events `node`'s daemon holds (from its start), read until `last` comes. */
async function upgradeEvents(node: TestNode, last: string): Promise<RealmEvent[]> {
  const got: RealmEvent[] = [];
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), 30_000);
  try {
    for await (const e of events({ types: ['upgrade.*'], after: 0, signal: ctl.signal }, node.client)) {
      got.push(e);
      if (e.type === last) break;
    }
  } catch (e) {
    if (!ctl.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
  }
  return got;
}

const versions = (node: TestNode): string[] => {
  const dir = join(node.dataDir, 'releases', 'versions');
  return existsSync(dir) ? readdirSync(dir).sort() : [];
};

void describe('realm upgrade across two nodes', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let work: string;
  let key: OwnerKey;
  let r1: string;
  let r2: string;

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'realm-test-upgrade-'));
    key = createKeyFile(join(work, 'config', 'owner.key'));
    [r1, r2] = await Promise.all([buildRelease(work, 'r1', '0.1.1'), buildRelease(work, 'r2', '0.1.2', true)]);
    etcd = await startEtcd();
    a = await startNode(etcd.cluster, 'node-a');
    b = await startNode(etcd.cluster, 'node-b', { join: (await a.client.nodes.invite()).token });
    await a.client.manifest.trust(key.publicKey); // for the cluster: node-b trusts it too
  });

  after(async () => {
    for (const n of [a, b]) if (n) await stopDaemon(n).catch(() => undefined);
    const left = (await Promise.all([a, b].filter(Boolean).map((n) => n.remove()))).flat();
    await etcd?.stop();
    rmSync(work, { recursive: true, force: true });
    assert.deepEqual(left, []);
  });

  /** Post a statement as the CLI would, signed with `signer`. */
  async function post(c: Client, st: Record<string, unknown>, signer = key, nodes: string[] = []): Promise<unknown> {
    return c.upgrades.create({
      statement: st,
      signature: signPayload(signer.privateKey, { kind: 'realm-release', ...st }),
      nodes,
    });
  }

  void it('installs release 1 on both nodes; each restarts into it and keeps its sandboxes', async () => {
    const sb = await Sandbox.create({ placement: { node: 'node-a' } }, a.client);
    const before = { a: daemonPid(a), b: daemonPid(b) };
    const r = await realm(['upgrade', '--file', r1, '--version', '1'], {
      url: a.url,
      token: a.client.token ?? '',
      env: { REALM_CONFIG: join(work, 'config') },
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 0, r.stderr + r.stdout + a.log());
    assert.match(r.stdout, /node-a: succeeded/);
    assert.match(r.stdout, /node-b: succeeded/);
    const { nodes } = await a.client.upgrades.status();
    assert.deepEqual(
      nodes.map((n) => [n.node, n.version, n.last?.phase]),
      [
        ['node-a', 1, 'succeeded'],
        ['node-b', 1, 'succeeded'],
      ],
    );
    for (const n of [a, b]) {
      assert.equal(readlinkSync(join(n.dataDir, 'releases', 'current')), join('versions', '1'));
      const pid = daemonPid(n);
      assert.notEqual(pid, before[n === a ? 'a' : 'b'], 'a new daemon runs');
      // It runs the new release's code.
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      assert.ok(cmd.includes(join(n.dataDir, 'releases', 'current', 'dist', 'src', 'cli', 'main.js')), cmd.join(' '));
    }
    const ev = await upgradeEvents(a, 'upgrade.succeeded');
    assert.deepEqual(
      ev.map((e) => [e.type, e.data.version, e.ids?.node]),
      [['upgrade.succeeded', 1, 'node-a']],
    );
    // The sandbox made before the restart was recovered and answers.
    assert.equal((await sb.exec('echo still here')).stdout, 'still here\n');
    await sb.destroy();
    // `realm upgrade status` shows both.
    const st = await realm(['upgrade', 'status'], { url: b.url, token: b.client.token ?? '' });
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /node-a.*succeeded/);
  });

  void it('refuses a downgrade, a tampered statement, an untrusted key and another platform, installing nothing; a key revoked on one node is refused by the other', async () => {
    const { digest } = await a.client.blobs.put(r1);
    const good = releaseStatement({ version: 1, digest, platform: PLATFORM, owner: key.publicKey });
    // Release 1 again: both nodes run it.
    await assert.rejects(post(a.client, good), (e) => code(e) === 'UPGRADE_DOWNGRADE');
    // Signed as release 3, then changed to name another package.
    const { digest: other } = await a.client.blobs.put(r2);
    const signed = releaseStatement({ version: 3, digest, platform: PLATFORM, owner: key.publicKey });
    await assert.rejects(
      a.client.upgrades.create({ statement: { ...signed, digest: other }, signature: signPayload(key.privateKey, signed) }),
      (e) => code(e) === 'UPGRADE_SIGNATURE',
    );
    // …or to say it is another version.
    await assert.rejects(
      a.client.upgrades.create({ statement: { ...signed, version: 4 }, signature: signPayload(key.privateKey, signed) }),
      (e) => code(e) === 'UPGRADE_SIGNATURE',
    );
    const stranger = createKeyFile(join(work, 'stranger', 'owner.key'));
    await assert.rejects(
      post(a.client, { ...signed, owner: stranger.publicKey }, stranger),
      (e) => code(e) === 'UPGRADE_KEY_UNTRUSTED',
    );
    await assert.rejects(post(a.client, { ...signed, platform: 'linux/riscv64' }), (e) => code(e) === 'UPGRADE_PLATFORM');
    // Trust is the cluster's (etcd): the key revoked on node-b is no longer trusted by node-a either.
    await b.client.manifest.revoke(key.publicKey);
    const r2Statement = releaseStatement({ version: 2, digest: other, platform: PLATFORM, owner: key.publicKey });
    await assert.rejects(post(a.client, r2Statement, key, ['node-b']), (e) => code(e) === 'UPGRADE_KEY_UNTRUSTED');
    await b.client.manifest.trust(key.publicKey);
    for (const n of [a, b]) {
      assert.deepEqual(versions(n), ['1']);
      assert.equal(readlinkSync(join(n.dataDir, 'releases', 'current')), join('versions', '1'));
    }
    const { nodes } = await b.client.upgrades.status();
    assert.deepEqual(
      nodes.map((n) => [n.version, n.last?.version, n.last?.phase]),
      [
        [1, 1, 'succeeded'],
        [1, 1, 'succeeded'],
      ],
    );
  });

  void it('rolls a node back by itself when the new release is not healthy', async () => {
    const pidA = daemonPid(a);
    const r = await realm(['upgrade', '--file', r2, '--version', '2', '--node', 'node-b'], {
      url: a.url,
      token: a.client.token ?? '',
      env: { REALM_CONFIG: join(work, 'config') },
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 1, r.stderr + r.stdout);
    assert.match(r.stdout, /node-b: rolled-back \[UPGRADE_UNHEALTHY\]/);
    const { nodes } = await a.client.upgrades.status();
    const nb = nodes.find((n) => n.node === 'node-b');
    assert.equal(nb?.version, 1);
    assert.equal(nb?.last?.phase, 'rolled-back');
    // Back on release 1: its link, its tree (release 2's is gone), its daemon answering.
    assert.equal(readlinkSync(join(b.dataDir, 'releases', 'current')), join('versions', '1'));
    assert.deepEqual(versions(b), ['1']);
    await waitFor('node-b answering', async () => (await b.client.upgrades.status()).nodes.length === 2);
    const cmd = readFileSync(`/proc/${daemonPid(b)}/cmdline`, 'utf8');
    assert.match(cmd, /releases\/versions\/1\/dist\/src\/cli\/main\.js|releases\/current/);
    // The daemon it went back to says so.
    const ev = (await upgradeEvents(b, 'upgrade.rolled-back')).at(-1);
    assert.equal(ev?.type, 'upgrade.rolled-back');
    assert.equal(ev?.data.code, 'UPGRADE_UNHEALTHY');
    assert.equal(ev?.data.version, 2);
    // node-a was not asked.
    assert.equal(daemonPid(a), pidA);
  });
});
