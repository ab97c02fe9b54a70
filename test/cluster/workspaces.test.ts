/**
 * Workspaces in a cluster of two nodes on a real etcd: one made through node A with a placement
 * only node B fits lands on B, is listed, used (exec, SSH agent) and removed through A; its name
 * is the cluster's; another user neither sees nor removes it through a peer; nothing is left.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import { type Client, type RealmError, SSH_AGENT_PATH, Sandbox, type WorkspaceInfo, workspaces } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { PREFIX } from '../../src/cluster/etcd.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { startAgent } from '../helpers/ssh-agent.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster workspace tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;
const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], { cwd, encoding: 'utf8' }).trim();

/** `realm ARGS` in `cwd` against `node`'s API as its admin. */
async function realm(node: TestNode, cwd: string, ...args: string[]): Promise<string> {
  const out = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), args, {
    cwd,
    env: { ...process.env, REALM_URL: node.url, REALM_TOKEN: node.client.token ?? '' },
  });
  return out.stdout;
}

/** Poll `check` until it holds (at most `ms`). */
async function until(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

void describe('workspaces in a cluster of two nodes', { skip }, () => {
  let etcd: TestEtcd;
  let a: TestNode;
  let b: TestNode;
  let etcdClient: Etcd3;
  let repo: string;
  let user: Client;

  /** The notes etcd keeps of sandboxes and workspaces (keys past the prefix). */
  const notes = async (): Promise<string[]> =>
    Object.keys(await etcdClient.getAll().prefix(`${PREFIX}sandboxes/`).strings()).map((k) =>
      k.slice(`${PREFIX}sandboxes/`.length),
    );

  before(async () => {
    etcd = await startEtcd();
    a = await startNode(etcd.cluster, 'node-a', { tags: ['zone=a'] });
    b = await startNode(etcd.cluster, 'node-b', { tags: ['ssd'], join: (await a.client.nodes.invite()).token });
    etcdClient = new Etcd3({ hosts: etcd.cluster.replace('etcd://', 'http://') });
    user = await a.userClient(4242);
    repo = mkdtempSync(join(tmpdir(), 'realm-cluster-ws-'));
    git(repo, 'init', '--quiet', '-b', 'main');
    writeFileSync(join(repo, 'app.py'), 'print("hi")\n');
    git(repo, 'add', '.');
    git(repo, 'commit', '--quiet', '-m', 'first commit');
  });

  after(async () => {
    for (const name of ['by-tag', 'by-node']) await workspaces.delete(name, a.client).catch(() => undefined);
    etcdClient?.close();
    const left = [...((await a?.remove()) ?? []), ...((await b?.remove()) ?? [])];
    await etcd?.stop();
    if (repo) rmSync(repo, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nodes left nothing behind');
  });

  void it('made through A with a tag (CLI) or a node (SDK) only B fits: it lands on B and is listed from A with its node', async () => {
    const made = JSON.parse(
      await realm(a, repo, 'ws', 'by-tag', '--tag', 'ssd', '--network', 'none', '--json'),
    ) as WorkspaceInfo & {
      created: boolean;
    };
    assert.deepEqual([made.created, made.node], [true, 'node-b']);
    const byNode = await workspaces.open('by-node', repo, { placement: { node: 'node-b' }, network: 'none' }, a.client);
    assert.deepEqual([byNode.created, byNode.node], [true, 'node-b']);

    // B holds them both (its list names itself for them).
    const onB = await b.client.request<{ workspaces: WorkspaceInfo[] }>('GET', '/v1/workspaces');
    assert.deepEqual(onB.workspaces.map((w) => [w.name, w.node]).sort(), [
      ['by-node', 'node-b'],
      ['by-tag', 'node-b'],
    ]);
    const cli = JSON.parse(await realm(a, repo, 'ws', '--json')) as WorkspaceInfo[];
    assert.deepEqual(cli.map((w) => [w.name, w.node, w.project]).sort(), [
      ['by-node', 'node-b', repo],
      ['by-tag', 'node-b', repo],
    ]);
    const one = await workspaces.get('by-tag', a.client);
    assert.deepEqual([one.sandbox.id, one.node], [made.sandbox.id, 'node-b']);
    // Its sandbox is noted in etcd by id and by name: any node finds it in one read.
    const noted = await notes();
    for (const key of [made.sandbox.id, 'ws-by-tag', byNode.sandbox.id, 'ws-by-node']) assert.ok(noted.includes(key), key);
  });

  void it('used through A: exec in it, the SSH agent forwarded into it, resumed where it lives', async () => {
    const ws = await workspaces.get('by-tag', a.client);
    const sb = await Sandbox.get(ws.sandbox.id, a.client);
    const log = await sb.exec(['git', '-C', '/workspace', 'log', '--format=%s']);
    assert.deepEqual([log.stdout, log.exitCode], ['first commit\n', 0]);

    const agent = await startAgent('cluster-ws-key');
    try {
      const fwd = await workspaces.forwardSshAgent('by-tag', agent.socket, a.client);
      const shown = await sb.exec('ssh-add -l', { env: { SSH_AUTH_SOCK: SSH_AGENT_PATH } });
      assert.equal(shown.exitCode, 0, shown.stderr);
      assert.match(shown.stdout, /cluster-ws-key \(ED25519\)/);
      fwd.close();
      await fwd.closed;
    } finally {
      agent.stop();
    }

    // Opened again through A, with no placement: resumed on B, not made anew.
    const again = await workspaces.open('by-tag', repo, {}, a.client);
    assert.deepEqual([again.created, again.sandbox.id], [false, ws.sandbox.id]);
    // A placement it does not fit is refused, naming where it lives.
    await assert.rejects(
      workspaces.open('by-tag', repo, { placement: { node: 'node-a' } }, a.client),
      (e) => code(e) === 'NO_NODE_FITS' && /lives on node node-b/.test((e as Error).message),
    );
  });

  void it("names are the cluster's; a placement no node fits says why per node; another user sees and removes nothing through A", async () => {
    await assert.rejects(
      workspaces.open('fresh', repo, { placement: { tags: ['tpu'] } }, a.client),
      (e) =>
        code(e) === 'NO_NODE_FITS' &&
        /node node-a: no tag tpu/.test((e as Error).message) &&
        /node node-b: no tag tpu/.test((e as Error).message),
    );
    await assert.rejects(workspaces.get('fresh', a.client), (e) => code(e) === 'WORKSPACE_NOT_FOUND');

    // Another user: not listed, not found, not removable, its sandbox unreachable — through A.
    assert.deepEqual(await workspaces.list(user), []);
    await assert.rejects(workspaces.get('by-tag', user), (e) => code(e) === 'WORKSPACE_NOT_FOUND');
    await assert.rejects(workspaces.delete('by-tag', user), (e) => code(e) === 'WORKSPACE_NOT_FOUND');
    const ws = await workspaces.get('by-tag', a.client);
    await assert.rejects(
      user.request('POST', `/v1/sandboxes/${ws.sandbox.id}/exec`, { command: ['true'] }),
      (e) => code(e) === 'SANDBOX_NOT_FOUND',
    );
    // Its name is taken cluster-wide: the user's own workspace of that name is not made on A.
    await assert.rejects(
      workspaces.open('by-tag', repo, { network: 'none' }, user),
      (e) => code(e) === 'SANDBOX_NAME_TAKEN' && /lives on node node-b/.test((e as Error).message),
    );
    assert.equal((await workspaces.get('by-tag', a.client)).sandbox.id, ws.sandbox.id, 'still there');
  });

  void it('one new name made on both nodes at the same moment: exactly one wins (a create-only claim in etcd)', async () => {
    const made = await Promise.allSettled([
      workspaces.open('race', repo, { placement: { node: 'node-a' }, network: 'none' }, a.client),
      workspaces.open('race', repo, { placement: { node: 'node-b' }, network: 'none' }, b.client),
    ]);
    try {
      assert.equal(made.filter((m) => m.status === 'fulfilled').length, 1, JSON.stringify(made));
      // The loser is refused at the claim (SANDBOX_NAME_TAKEN), or, when the winner's claim is
      // already there as it is routed, as a workspace that lives on the other node (NO_NODE_FITS).
      const lost = made.find((m) => m.status === 'rejected');
      const winner = made.find((m) => m.status === 'fulfilled');
      const other = winner === made[0] ? 'node-a' : 'node-b';
      assert.ok(['SANDBOX_NAME_TAKEN', 'NO_NODE_FITS'].includes(code(lost?.reason) ?? ''), JSON.stringify(lost));
      assert.match((lost?.reason as Error).message, new RegExp(`lives on node ${other}`));
    } finally {
      await workspaces.delete('race', a.client).catch(() => undefined);
    }
    assert.deepEqual((await workspaces.list(a.client)).map((w) => w.name).sort(), ['by-node', 'by-tag']);
  });

  void it('one on a node that is down is listed lost and its name kept; back with its node', async () => {
    const ws = await workspaces.get('by-node', a.client);
    await b.kill('SIGKILL');
    await until('node-b down', async () => (await a.client.nodes.get('node-b')).state === 'down');
    await assert.rejects(
      workspaces.open('by-node', repo, {}, a.client),
      (e) => code(e) === 'NODE_UNREACHABLE' && /workspace by-node lives on node node-b, which is down/.test((e as Error).message),
    );
    await assert.rejects(workspaces.get('by-node', a.client), (e) => code(e) === 'NODE_UNREACHABLE');
    // Its name is not free meanwhile: it is not made again on A.
    await assert.rejects(
      workspaces.open('by-node', repo, { placement: { node: 'node-a' }, network: 'none' }, a.client),
      (e) => code(e) === 'NODE_UNREACHABLE',
    );
    assert.deepEqual(
      (await workspaces.list(a.client)).map((w) => [w.name, w.node, w.sandbox.status, w.project]).sort(),
      [
        ['by-node', 'node-b', 'lost', repo],
        ['by-tag', 'node-b', 'lost', repo],
      ],
      'listed from their notes, lost',
    );
    const lost = (await a.client.request<{ sandboxes: { id: string; status: string }[] }>('GET', '/v1/sandboxes')).sandboxes;
    assert.deepEqual(
      lost.filter((s) => s.id === ws.sandbox.id).map((s) => s.status),
      ['lost'],
      'its sandbox is listed once, lost',
    );
    await b.restart();
    await until('node-b up', async () => (await a.client.nodes.get('node-b')).state === 'up');
    assert.equal((await workspaces.open('by-node', repo, {}, a.client)).sandbox.id, ws.sandbox.id);
  });

  void it('removed through A: gone from every list, its sandbox and notes with it', async () => {
    const ws = await workspaces.get('by-tag', a.client);
    assert.equal((await realm(a, repo, 'ws', 'by-tag', '--delete')).trim(), 'by-tag deleted');
    await workspaces.delete('by-node', a.client);
    assert.deepEqual(await workspaces.list(a.client), []);
    assert.deepEqual((await b.client.request<{ workspaces: unknown[] }>('GET', '/v1/workspaces')).workspaces, []);
    await assert.rejects(Sandbox.get(ws.sandbox.id, a.client), (e) => code(e) === 'SANDBOX_NOT_FOUND');
    assert.deepEqual(await notes(), []);
  });
});
