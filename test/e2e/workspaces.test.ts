/**
 * Workspaces on real git repositories: whatever the agent does in its clone (commits, history
 * rewrites, deleted branches, rm -rf), the user's working tree and .git stay byte-identical, and
 * the agent's commits can be fetched from the clone.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SSH_AGENT_PATH, Sandbox, workspaces } from '@realm/sdk';
import { type CliResult, REALM_BIN, realm } from '../helpers/cli.js';
import {
  daemonHooks,
  leftovers,
  namespaceSkipReason,
  removeTestDirs,
  startTestDaemon,
  type TestDaemon,
} from '../helpers/daemon.js';
import { startAgent } from '../helpers/ssh-agent.js';
import { TMUX, type Terminal, terminal } from '../helpers/tmux.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping workspace tests: ${skip}`);
if (!TMUX) console.log('# skipping the workspace terminal case: tmux is not installed (npm run setup installs it)');

const git = (cwd: string, ...args: string[]): string =>
  execFileSync('git', ['-c', 'user.name=Test', '-c', 'user.email=test@example.com', ...args], { cwd, encoding: 'utf8' }).trim();

/** Every file under dir (including .git), with its bytes and mode. */
function fingerprint(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      h.update(`${p.slice(dir.length)}\0${st.mode}\0`);
      if (st.isDirectory()) walk(p);
      else h.update(readFileSync(p));
    }
  };
  walk(dir);
  return h.digest('hex');
}

/** The user-visible state of a repository: refs (but fetched remotes), status, files. */
function state(repo: string): string {
  const refs = git(repo, 'for-each-ref', '--format=%(refname) %(objectname)')
    .split('\n')
    .filter((l) => !l.startsWith('refs/remotes/realm-agent-1/'));
  return JSON.stringify([
    refs,
    git(repo, 'status', '--porcelain'),
    readFileSync(join(repo, 'app.py'), 'utf8'),
    readFileSync(join(repo, 'uncommitted.txt'), 'utf8'),
  ]);
}

function makeRepo(): string {
  const repo = mkdtempSync(join(tmpdir(), 'realm-repo-'));
  git(repo, 'init', '-q', '-b', 'main');
  writeFileSync(join(repo, 'app.py'), 'print("v1")\n');
  git(repo, 'add', '.');
  git(repo, 'commit', '-q', '-m', 'first');
  git(repo, 'branch', 'feature');
  git(repo, 'remote', 'add', 'origin', 'https://git.example.com/team/app.git');
  return repo;
}

void describe('workspaces', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  void it("the agent may do anything in its clone; the user's repository does not change; its commits can be fetched", async () => {
    const repo = makeRepo();
    writeFileSync(join(repo, 'uncommitted.txt'), 'work in progress\n'); // the user's working tree, dirty
    // (This case fetches from the clone into the user's .git on purpose; the next one checks bytes.)
    const beforeState = state(repo);
    try {
      const ws = await workspaces.open('agent-1', join(repo), {}, t.client);
      assert.equal(ws.created, true);
      assert.equal(ws.project, repo);
      const sb = await Sandbox.get(ws.sandbox.id, t.client);
      const sh = async (cmd: string): Promise<string> => {
        const r = await sb.exec(cmd, {
          cwd: '/workspace',
          env: {
            GIT_AUTHOR_NAME: 'agent',
            GIT_AUTHOR_EMAIL: 'a@example.com',
            GIT_COMMITTER_NAME: 'agent',
            GIT_COMMITTER_EMAIL: 'a@example.com',
          },
        });
        assert.equal(r.exitCode, 0, `${cmd}\n${r.stderr}`);
        return r.stdout.trim();
      };
      assert.equal(await sh('git remote get-url origin'), 'https://git.example.com/team/app.git');
      assert.equal(await sh('cat app.py'), 'print("v1")');
      await sh('echo \'print("v2")\' > app.py && git commit -qam "agent change"');
      const agentCommit = await sh('git rev-parse HEAD');
      await sh('git commit -q --amend -m "rewritten" && git branch -q -D -r origin/feature && git tag agent-tag');
      const rewritten = await sh('git rev-parse HEAD');
      // The host can review the agent's work from the clone.
      assert.equal(ws.path, (await workspaces.get('agent-1', t.client)).path);
      // One command brings the agent's branches home (git bundle runs inside, as the sandbox's user).
      const fetched = await realm(['ws', 'agent-1', '--fetch'], { url: t.url, token: t.token, cwd: repo, timeoutMs: 0 });
      assert.equal(fetched.code, 0, fetched.stderr);
      assert.match(fetched.stdout, /^realm-agent-1\/main [0-9a-f]+ rewritten$/m);
      assert.equal(git(repo, 'rev-parse', 'refs/remotes/realm-agent-1/main'), rewritten);
      assert.equal(git(repo, 'show', 'realm-agent-1/main:app.py'), 'print("v2")');
      assert.equal(await sh('ls /tmp'), '', 'the bundle is removed from the workspace');
      assert.notEqual(agentCommit, rewritten);
      // Then it wrecks its clone entirely.
      await sh('cd / && rm -rf /workspace/.git /workspace/*');
      // Files persist across stop/start; the workspace resumes.
      await sh('echo kept > /workspace/note');
      await sb.stop();
      const again = await workspaces.open('agent-1', repo, {}, t.client);
      assert.equal(again.created, false);
      assert.equal((await (await Sandbox.get(again.sandbox.id, t.client)).exec('cat /workspace/note')).stdout, 'kept\n');
      // The user's own branches, tags, working tree and uncommitted work are as they were.
      assert.equal(state(repo), beforeState);
      await workspaces.delete('agent-1', t.client);
      await assert.rejects(workspaces.get('agent-1', t.client), (e) => (e as { code?: string }).code === 'WORKSPACE_NOT_FOUND');
      assert.deepEqual(await leftovers(t), []);
      assert.equal(state(repo), beforeState);
    } finally {
      await workspaces.delete('agent-1', t.client).catch(() => undefined);
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it("the user's tree and .git are byte-identical however the clone is abused", async () => {
    const repo = makeRepo();
    writeFileSync(join(repo, 'dirty.txt'), 'not committed\n');
    const before = fingerprint(repo);
    try {
      const ws = await workspaces.open('agent-2', repo, {}, t.client);
      const sb = await Sandbox.get(ws.sandbox.id, t.client);
      const r = await sb.exec(
        'git -c user.name=a -c user.email=a@b commit -q --allow-empty -m x && git reset -q --hard HEAD~1 && git branch -q -D -r origin/feature && git reflog expire --expire=now --all && git gc -q --prune=now && rm -rf .git * && ls -A | wc -l',
        { cwd: '/workspace' },
      );
      assert.equal(r.stdout.trim(), '0', 'the clone was not wrecked');
      assert.equal(r.exitCode, 0, r.stderr);
      assert.equal(fingerprint(repo), before, "the user's repository changed");
      await workspaces.delete('agent-2', t.client);
      assert.equal(fingerprint(repo), before, "deleting the workspace changed the user's repository");
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it("defaults: an allow-list network with the origin, the user's git config read-only, the driver asked for; files survive a daemon restart", async () => {
    const repo = makeRepo();
    let d = await startTestDaemon();
    try {
      // Refused once the clone is made (no such image): nothing of it stays.
      await assert.rejects(
        workspaces.open('drv', repo, { image: 'no-such-image:1' }, d.client),
        (e) => (e as { code?: string }).code === 'IMAGE_NOT_FOUND',
      );
      // A driver this version does not have is a wrong request, before anything is made; one
      // that cannot give a workspace what it needs (wasm: no shell, no allow-list network) says so.
      await assert.rejects(
        workspaces.open('drv', repo, { driver: 'firecracker' as never }, d.client),
        (e) => (e as { code?: string }).code === 'INVALID_REQUEST',
      );
      await assert.rejects(
        workspaces.open('drv', repo, { driver: 'wasm' }, d.client),
        (e) => (e as { code?: string }).code === 'DRIVER_UNAVAILABLE',
      );
      assert.deepEqual(await workspaces.list(d.client), [], 'a refused workspace leaves nothing');
      const ws = await workspaces.open('drv', repo, { driver: 'namespace', gitconfig: '[user]\n\tname = Host User\n' }, d.client);
      assert.equal(ws.sandbox.driver, 'namespace');
      assert.equal(ws.sandbox.network, 'none');
      assert.ok(ws.sandbox.allow.includes('git.example.com:443'), "the origin's host is allowed");
      assert.ok(ws.sandbox.allow.includes('pypi.org:443'));
      const sb = await Sandbox.get(ws.sandbox.id, d.client);
      assert.equal((await sb.exec('git config --global user.name')).stdout, 'Host User\n');
      const write = await sb.exec('git config --global user.name Agent');
      assert.notEqual(write.exitCode, 0, "the user's git config is read-only inside");
      assert.equal((await sb.exec('env')).stdout.includes('HTTPS_PROXY='), true, 'tools find the proxy');
      assert.equal((await sb.exec('echo kept > /workspace/note')).exitCode, 0);
      const used = Date.parse(ws.lastUsedAt);
      // The daemon goes down as in a crash and comes back on the same state.
      const { dataDir, cgroupRoot } = d;
      await d.close({ keepSandboxes: true });
      d = await startTestDaemon({ dataDir, cgroupRoot });
      const again = await workspaces.open('drv', repo, { gitconfig: '[user]\n\tname = Changed\n' }, d.client);
      assert.equal(again.created, false);
      assert.ok(Date.parse(again.lastUsedAt) >= used);
      const sb2 = await Sandbox.get(again.sandbox.id, d.client);
      assert.equal((await sb2.exec('cat /workspace/note')).stdout, 'kept\n');
      assert.equal((await sb2.exec('git config --global user.name')).stdout, 'Changed\n', "the git config follows the user's");
      await workspaces.delete('drv', d.client);
      assert.deepEqual(await leftovers(d), []);
    } finally {
      await workspaces.delete('drv', d.client).catch(() => undefined);
      await d.close();
      removeTestDirs(d);
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it('SSH agent forwarding: the agent answers inside while forwarded, and is gone after', async () => {
    const repo = makeRepo();
    const agent = await startAgent('realm-test-key');
    try {
      const ws = await workspaces.open('agent-fw', repo, {}, t.client);
      const sb = await Sandbox.get(ws.sandbox.id, t.client);
      const list = (): Promise<{ stdout: string; exitCode: number | null }> =>
        sb.exec('ssh-add -l', { env: { SSH_AUTH_SOCK: SSH_AGENT_PATH } });
      assert.notEqual((await list()).exitCode, 0, 'no agent before forwarding');
      const fwd = await workspaces.forwardSshAgent('agent-fw', agent.socket, t.client);
      const shown = await list();
      assert.equal(shown.exitCode, 0);
      assert.match(shown.stdout, /realm-test-key \(ED25519\)/);
      // Two programs at once, each with its own channel.
      const both = await sb.exec(`ssh-add -L & ssh-add -L; wait`, { env: { SSH_AUTH_SOCK: SSH_AGENT_PATH } });
      assert.equal(both.stdout.match(/ssh-ed25519 /g)?.length, 2);
      await assert.rejects(
        workspaces.forwardSshAgent('no-such-ws', agent.socket, t.client),
        (e) => (e as { code?: string }).code === 'WORKSPACE_NOT_FOUND',
      );
      fwd.close();
      await fwd.closed;
      for (let i = 0; i < 100 && (await list()).exitCode === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.notEqual((await list()).exitCode, 0, 'the agent is gone once forwarding ends');
      await workspaces.delete('agent-fw', t.client);
    } finally {
      agent.stop();
      await workspaces.delete('agent-fw', t.client).catch(() => undefined);
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it('names are checked, outside a repository is refused, realm ws lists and prints paths', async () => {
    for (const bad of ['has space', 'ls', 'x'.repeat(60), '../up']) {
      await assert.rejects(
        workspaces.open(bad, '/tmp', {}, t.client),
        (e) => (e as { code?: string }).code === 'INVALID_REQUEST',
        bad,
      );
    }
    const plain = mkdtempSync(join(tmpdir(), 'realm-norepo-'));
    await assert.rejects(workspaces.open('ok-name', plain, {}, t.client), (e) =>
      /not in a git repository/.test((e as Error).message),
    );
    rmSync(plain, { recursive: true, force: true });
    const repo = makeRepo();
    try {
      const cli = (args: string[]): Promise<CliResult> => realm(args, { url: t.url, token: t.token, cwd: repo, timeoutMs: 0 });
      const ran = await cli(['ws', 'cli-ws', '--', 'sh', '-c', 'pwd; cat app.py']);
      assert.equal(ran.code, 0, ran.stderr);
      assert.match(ran.stdout, /\/workspace\s+print\("v1"\)/);
      assert.match(ran.stderr, /created workspace cli-ws/);
      assert.match((await cli(['ws'])).stdout, /cli-ws.*realm-repo-/);
      assert.match((await cli(['ws', 'cli-ws', '--path'])).stdout, /volumes\/ws-cli-ws/);
      assert.equal((await cli(['ws', 'cli-ws', '--delete'])).code, 0);
      assert.deepEqual(JSON.parse((await cli(['ws', '--json'])).stdout), []);
    } finally {
      rmSync(repo, { recursive: true, force: true });
    }
  });

  void it(
    'a terminal session: detach with Ctrl-P Ctrl-Q, attach again and see the earlier output, --logs',
    { skip: TMUX ? false : 'tmux is not installed' },
    async () => {
      const repo = makeRepo();
      // The user's SSH agent, forwarded into the session while it is attached.
      const agent = await startAgent('tmux-test-key');
      const term = terminal(
        'realm-ws',
        `cd ${repo} && export REALM_URL=${t.url} REALM_TOKEN=${t.token} SSH_AUTH_SOCK=${agent.socket} && exec bash --norc`,
      );
      try {
        term.keys(`${REALM_BIN} ws tm-ws`, 'Enter');
        await term.until(/created workspace tm-ws/, 'the workspace being made');
        await term.until(/\$ ?$/m, 'a prompt in the workspace');
        term.keys('echo first-$((40+2)) && pwd', 'Enter');
        await term.until(/first-42\s+\/workspace/, 'the command output');
        term.keys('ssh-add -l', 'Enter');
        await term.until(/tmux-test-key \(ED25519\)/, "the forwarded agent's key");
        term.keys('C-p', 'C-q');
        await term.until(/detached from workspace tm-ws/, 'the detach');
        term.keys(`${REALM_BIN} ws tm-ws`, 'Enter');
        await term.until(/resumed workspace tm-ws/, 'the resume');
        // The session's earlier output comes back on attach.
        await term.until(/resumed workspace tm-ws[\s\S]*first-42/, 'the earlier output, replayed');
        term.keys('exit', 'Enter');
        await term.until(/\$ ?$/m, 'the outer shell again');
        // Not execFileSync: the daemon under test lives in this process.
        const logs = (await realm(['ws', 'tm-ws', '--logs'], { url: t.url, token: t.token, cwd: repo, timeoutMs: 0 })).stdout;
        assert.match(logs, /first-42/);
      } finally {
        term.close();
        agent.stop();
        await workspaces.delete('tm-ws', t.client).catch(() => undefined);
        rmSync(repo, { recursive: true, force: true });
      }
    },
  );

  void it(
    'realm ws in a terminal is a picker: move, delete with d then y, resume with enter, leave with q',
    { skip: TMUX ? false : 'tmux is not installed' },
    async () => {
      const repo = makeRepo();
      let term: Terminal | undefined;
      try {
        await workspaces.open('pick-a', repo, {}, t.client);
        await workspaces.open('pick-b', repo, {}, t.client);
        term = terminal(
          'realm-pick',
          `cd / && export REALM_URL=${t.url} REALM_TOKEN=${t.token} PS1='outer$ ' && exec bash --norc`,
          { cols: 150, rows: 30 },
          0,
        );
        await term.until(/outer\$ ?$/m, 'the outer prompt');
        term.keys(`${REALM_BIN} ws`, 'Enter');
        await term.until(/LAST USED[\s\S]*> pick-a[\s\S]* {2}pick-b[\s\S]*enter: resume/, 'the picker with both workspaces');
        term.keys('j');
        await term.until(/> pick-b/, 'the selection moving down');
        term.keys('d');
        await term.until(/delete pick-b\?/, 'the question');
        term.keys('y');
        await term.until(/> pick-a/, 'the list after the delete');
        assert.doesNotMatch(term.screen(), /pick-b/);
        assert.deepEqual(
          (await workspaces.list(t.client)).map((w) => w.name),
          ['pick-a'],
        );
        term.keys('Enter');
        await term.until(/resumed workspace pick-a[\s\S]*\$ ?$/m, 'the resume and a prompt');
        term.keys('pwd', 'Enter');
        await term.until(/^\/workspace$/m, 'a shell in the workspace');
        term.keys('exit', 'Enter');
        await term.until(/outer\$ ?$/m, 'the outer shell again');
        term.keys('clear', 'Enter');
        term.keys(`${REALM_BIN} ws`, 'Enter');
        await term.until(/> pick-a/, 'the picker again');
        term.keys('q');
        await term.until(/outer\$ ?$/m, 'the outer shell after q');
        assert.deepEqual(
          (await workspaces.list(t.client)).map((w) => w.name),
          ['pick-a'],
          'q changes nothing',
        );
      } finally {
        term?.close();
        for (const n of ['pick-a', 'pick-b']) await workspaces.delete(n, t.client).catch(() => undefined);
        rmSync(repo, { recursive: true, force: true });
      }
    },
  );
});
