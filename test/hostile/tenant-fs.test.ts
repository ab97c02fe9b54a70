/**
 * Tenants against the daemon's own file handling (issue 13, points 1 and 2):
 * - a tenant who takes a workspace's names first (its sandbox `ws-NAME`, its volume `ws-NAME` with
 *   links swapped in by a racing program) gets nothing, and no host file is touched;
 * - a plain sandbox cannot mount a workspace's clone, nor label itself a workspace;
 * - the daemon's recursive removal and chown of a tree a sandbox writes follow no link a racing
 *   program swaps in for a directory: a host directory outside the data dir keeps its files and
 *   their owner.
 * Every hostile program runs inside a sandbox behind the guard.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Sandbox, workspaces, type ExecResult } from '@realm/sdk';
import { chownTree, removeTree } from '../../src/util/safe-tree.js';
import { STORAGE_UID, daemonHooks, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { assertContained, assertNoGuard, nonce, pyGuard, secs, waitFor } from './common.js';

const skip = await testDriverSkipReason();
let t: TestDaemon;
daemonHooks((d) => (t = d), {}, skip);

const VICTIM_FILES = ['f1', 'f2', 'f3', 'f4', 'f5'];

/** A host directory outside the data dir, owned by root, holding 5 files. */
function makeVictim(): string {
  const dir = mkdtempSync(join(tmpdir(), 'realm-victim-'));
  for (const f of VICTIM_FILES) writeFileSync(join(dir, f), `${f}\n`);
  return dir;
}

/** What the victim directory holds and who owns it: must not change. */
function victimState(dir: string): string {
  return JSON.stringify([
    statSync(dir).uid,
    readdirSync(dir)
      .sort()
      .map((f) => `${f}:${statSync(join(dir, f)).uid}:${statSync(join(dir, f)).gid}`),
  ]);
}
const INTACT = JSON.stringify([0, VICTIM_FILES.map((f) => `${f}:0:0`)]);

const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], { cwd, encoding: 'utf8' }).trim();

function makeRepo(): string {
  const repo = mkdtempSync(join(tmpdir(), 'realm-repo-'));
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'app.py'), 'print("v1")\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'first');
  return repo;
}

/**
 * A racing program (Python, guarded): under ROOT it keeps pairs of a directory d<i> (full of
 * files) and a link l<i> to the host victim directory, and swaps them as fast as it can
 * (renameat2 RENAME_EXCHANGE; where the kernel refuses that flag, gVisor's, by renames), so any
 * walk that checks d<i> and then uses its path again lands in the victim. It puts back whatever
 * the daemon removes; with `ready` it writes ROOT/ready once ROOT is populated. Stops when
 * STOP exists or after `seconds`; prints the number of swaps.
 */
function racer(root: string, victim: string, stop: string, seconds: number): string {
  return `${pyGuard(t.dataDir)}import ctypes, errno, os, time
libc = ctypes.CDLL(None, use_errno=True)
NR = {'x86_64': 316, 'aarch64': 276}[os.uname().machine]
ROOT, VICTIM, STOP = ${JSON.stringify(root)}, ${JSON.stringify(victim)}, ${JSON.stringify(stop)}
N = 8
exchange = True
def swap(i):
    global exchange
    d, l = '%s/d%d' % (ROOT, i), '%s/l%d' % (ROOT, i)
    if exchange:
        if libc.syscall(NR, -100, d.encode(), -100, l.encode(), 2) == 0:
            return True
        if ctypes.get_errno() == errno.EINVAL:
            exchange = False
        return False
    h = '%s/h%d' % (ROOT, i)
    os.rename(d, h)
    os.symlink(VICTIM, d)
    os.unlink(d)
    os.rename(h, d)
    return True
def populate():
    os.makedirs(ROOT, exist_ok=True)
    for i in range(N):
        d, l = '%s/d%d' % (ROOT, i), '%s/l%d' % (ROOT, i)
        if not os.path.lexists(d):
            os.mkdir(d)
            for f in range(1, 21):
                open('%s/f%d' % (d, f), 'w').write('x')
        if not os.path.lexists(l):
            os.symlink(VICTIM, l)
    open(ROOT + '/ready', 'w').close()
swaps = 0
end = time.time() + ${seconds}
while time.time() < end and not os.path.exists(STOP):
    try:
        if not os.path.exists(ROOT + '/ready'):
            populate()
        for i in range(N):
            swaps += swap(i)
    except OSError:
        pass
print('swaps', swaps, flush=True)
`;
}

function swapsOf(r: ExecResult): number {
  assertNoGuard(r);
  return Number(/swaps (\d+)/.exec(r.stdout)?.[1] ?? -1);
}

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'accepted';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

void test(
  "workspace squatting: a tenant who takes a workspace's sandbox or volume name first gets nothing; the victim's workspace works; no host file is touched",
  { skip },
  async () => {
    const victim = makeVictim();
    const repo = makeRepo();
    const name = `proj-${nonce()}`;
    const name2 = `proj-${nonce()}`;
    const secret = `secret-${nonce()}`;
    let squatter: Sandbox | undefined;
    let racerSandbox: Sandbox | undefined;
    let racing: Promise<ExecResult> | undefined;
    try {
      // The tenant's sandbox named like the victim's workspace, labelled like one.
      const squat = await refusal(
        Sandbox.create({ name: `ws-${name}`, labels: { 'realm.workspace': name, 'realm.project': repo } }, t.client).then(
          (s) => (squatter = s),
        ),
      );
      // The tenant's volume named like the victim's other workspace's clone, with a racing program in it.
      const volumeSquat = await refusal(
        Sandbox.create(
          { name: `squat-${nonce()}`, memory: '256m', volumes: [{ volume: `ws-${name2}`, path: '/data' }] },
          t.client,
        ).then((s) => (racerSandbox = s)),
      );
      if (racerSandbox) {
        racing = racerSandbox.exec(['/usr/bin/python3', '-c', racer('/data', victim, '/data/stop', 90)], { timeout: secs(120) });
        assert.ok(
          await waitFor(() => existsSync(join(t.dataDir, 'volumes', `ws-${name2}`, 'ready')), 30_000),
          'the racing program did not start',
        );
      }

      // Then the victim opens both workspaces, with their git config.
      const ws = await refusal(workspaces.open(name, repo, { gitconfig: `[user]\n\tname = ${secret}\n` }, t.client));
      const ws2 = await refusal(workspaces.open(name2, repo, {}, t.client));
      if (racerSandbox) {
        try {
          writeFileSync(join(t.dataDir, 'volumes', `ws-${name2}`, 'stop'), '');
        } catch {
          await racerSandbox.stop(); // its volume is gone (removed under it): no file reaches it
        }
        await racing?.catch(() => undefined);
      }
      // The squatter's sandbox, were it accepted, must not have received the victim's git config.
      const leaked = squatter ? (await squatter.exec('cat /.realm/share/gitconfig 2>/dev/null; true')).stdout : '';

      assert.equal(victimState(victim), INTACT, 'a host directory outside the data dir lost files or changed owner');
      assert.ok(!leaked.includes(secret), "the squatter received the victim's git config");
      assert.equal(squat, 'INVALID_REQUEST', 'a sandbox named ws-NAME (labelled realm.workspace) must be refused');
      assert.equal(volumeSquat, 'INVALID_REQUEST', 'a sandbox mounting a volume named ws-NAME must be refused');
      assert.equal(ws, 'accepted', `the victim's workspace must open: ${ws}`);
      assert.equal(ws2, 'accepted', `the victim's second workspace must open: ${ws2}`);

      // The victim's workspace is theirs: its clone, its git config.
      const mine = await workspaces.get(name, t.client);
      const sb = await Sandbox.get(mine.sandbox.id, t.client);
      const r = await sb.exec('cat app.py && git config --global user.name', { cwd: '/workspace' });
      assert.equal(r.stdout, `print("v1")\n${secret}\n`, r.stderr);

      // A plain sandbox may not mount it, nor become one by label, nor remove its clone.
      assert.equal(
        await refusal(Sandbox.create({ memory: '256m', volumes: [{ volume: `ws-${name}`, path: '/x' }] }, t.client)),
        'INVALID_REQUEST',
      );
      const plain = await Sandbox.create({ memory: '256m' }, t.client);
      try {
        assert.equal(await refusal(plain.update({ labels: { 'realm.workspace': name } })), 'INVALID_REQUEST');
      } finally {
        await plain.destroy();
      }
      const del = await fetch(`${t.url}/v1/volumes/ws-${name}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${t.token}` },
      });
      assert.equal(del.status, 400, "the generic volume route must not remove a workspace's clone");
      assert.equal(((await del.json()) as { error: { code: string } }).error.code, 'INVALID_REQUEST');
      assert.equal((await workspaces.list(t.client)).filter((w) => w.name === name || w.name === name2).length, 2);
    } finally {
      await squatter?.destroy().catch(() => undefined);
      await racerSandbox?.destroy().catch(() => undefined);
      for (const n of [name, name2]) await workspaces.delete(n, t.client).catch(() => undefined);
      await fetch(`${t.url}/v1/volumes/ws-${name2}`, { method: 'DELETE', headers: { authorization: `Bearer ${t.token}` } }).catch(
        () => undefined,
      );
      const after = victimState(victim);
      rmSync(victim, { recursive: true, force: true });
      rmSync(repo, { recursive: true, force: true });
      assert.equal(after, INTACT, 'a host directory outside the data dir lost files or changed owner');
    }
    await assertContained(t);
  },
);

void test(
  'removal and chown of a tree a sandbox writes follow no link swapped in for a directory by a racing program',
  { skip },
  async () => {
    const victim = makeVictim();
    const volume = `race-${nonce()}`;
    const host = join(t.dataDir, 'volumes', volume);
    const sb = await Sandbox.create({ memory: '256m', volumes: [{ volume, path: '/data' }] }, t.client);
    try {
      const racing = sb.exec(['/usr/bin/python3', '-c', racer('/data/t', victim, '/data/stop', 240)], { timeout: secs(300) });
      let rounds = 0;
      for (let i = 0; i < 30; i++) {
        // The daemon's own chown and removal, while the program swaps links in.
        assert.ok(
          await waitFor(() => existsSync(join(host, 't', 'ready')), 30_000),
          'the racing program did not (re)populate its tree',
        );
        await chownTree(join(host, 't'), STORAGE_UID, STORAGE_UID);
        await removeTree(join(host, 't'));
        rounds++;
      }
      writeFileSync(join(host, 'stop'), '');
      const swaps = swapsOf(await racing);
      assert.ok(swaps > 0, 'the program never swapped a directory for a link');
      assert.equal(rounds, 30);
      assert.equal(victimState(victim), INTACT, 'a host directory outside the data dir lost files or changed owner');
    } finally {
      writeFileSync(join(host, 'stop'), '');
      await sb.destroy();
      const after = victimState(victim);
      rmSync(victim, { recursive: true, force: true });
      assert.equal(after, INTACT, 'a host directory outside the data dir lost files or changed owner');
    }
    await assertContained(t);
  },
);
