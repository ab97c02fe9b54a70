/**
 * An unprivileged local user against the root daemon (issue 13, point 6). The user is a
 * throwaway system account made for this suite (removed after); its requests come from a node
 * process running as its uid, over loopback TCP or the daemon's unix socket. It must not:
 * (a) mint tokens over TCP without one; (b) act as admin through the socket or a token it made;
 * (c) have a repository only root can read cloned into a workspace; (d) see or touch root's
 * sandboxes and volumes; and (e) `--anonymous runs` opens runs to callers without a token, and
 * nothing else.
 *
 * Driver-independent (test/hostile/daemon/, run once per `npm test`): tokens, the socket's
 * SO_PEERCRED identity, owners, admin routes and the clone made as the caller are the daemon's;
 * the sandboxes here only show what a request got.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox } from '@realm/sdk';
import { leftovers, removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../../helpers/daemon.js';
import { nonce } from '../common.js';

const skip = await testDriverSkipReason();
if (skip) console.log(`# skipping local-user tests: ${skip}`);

interface Req {
  method: string;
  path: string;
  body?: unknown;
  token?: string;
  /** The daemon's unix socket; else loopback TCP at `port`. */
  socket?: string;
  port?: number;
  /** Ask for a WebSocket; the answer is the daemon's first frame. */
  upgrade?: boolean;
}

/** One HTTP request made by a process running as uid/gid (plain node:http, nothing of realm's). */
const CLIENT = `
const http = require('node:http');
const r = JSON.parse(process.argv[1]);
const body = r.body === undefined ? undefined : JSON.stringify(r.body);
const headers = {};
if (body !== undefined) {
  headers['content-type'] = 'application/json';
  headers['content-length'] = Buffer.byteLength(body);
}
if (r.token) headers.authorization = 'Bearer ' + r.token;
const where = r.socket ? { socketPath: r.socket } : { host: '127.0.0.1', port: r.port };
if (r.upgrade) Object.assign(headers, { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' });
const req = http.request({ ...where, method: r.method, path: r.path, headers }, (res) => {
  let d = '';
  res.setEncoding('utf8');
  res.on('data', (c) => (d += c));
  res.on('end', () => process.stdout.write(JSON.stringify({ status: res.statusCode, body: d, uid: process.getuid() })));
});
// A WebSocket: the first frame the daemon sends (unmasked text, short), then hang up.
req.on('upgrade', (res, sock, head) => {
  let buf = head;
  const done = () => {
    const n = buf[1] & 0x7f;
    const off = n === 126 ? 4 : 2;
    const len = n === 126 ? buf.readUInt16BE(2) : n;
    if (buf.length < off + len) return false;
    process.stdout.write(JSON.stringify({ status: res.statusCode, body: buf.subarray(off, off + len).toString('utf8'), uid: process.getuid() }));
    sock.destroy();
    return true;
  };
  if (buf.length >= 2 && done()) return;
  sock.on('data', (d) => { buf = Buffer.concat([buf, d]); if (buf.length >= 2) done(); });
});
req.on('error', (e) => process.stdout.write(JSON.stringify({ status: 0, body: String(e), uid: process.getuid() })));
if (body !== undefined) req.write(body);
req.end();
`;

interface User {
  name: string;
  uid: number;
  gid: number;
}

function as(
  user: User,
  req: Req,
): Promise<{ status: number; json: Record<string, unknown> & { error?: { code: string } }; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', CLIENT, JSON.stringify(req)], {
      uid: user.uid,
      gid: user.gid,
      cwd: '/',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', () => {
      try {
        const r = JSON.parse(out) as { status: number; body: string; uid: number };
        assert.equal(r.uid, user.uid, 'the client did not run as the local user');
        let json: Record<string, unknown> = {};
        try {
          json = JSON.parse(r.body) as Record<string, unknown>;
        } catch {
          /* not JSON */
        }
        resolve({ status: r.status, json, text: r.body });
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** Every file under `dir` whose content holds `marker` (the daemon's data dir, searched for a clone). */
function filesHolding(dir: string, marker: string): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        try {
          if (readFileSync(p).includes(marker)) found.push(p);
        } catch {
          /* went away */
        }
      }
    }
  };
  walk(dir);
  return found;
}

void describe('a local user against the root daemon', { skip }, () => {
  let t: TestDaemon;
  let port = 0;
  let sockDir = '';
  let user: User;
  const tag = nonce().slice(0, 6);

  before(async () => {
    if (skip) return;
    user = { name: `rlmlu${tag}`, uid: 0, gid: 0 };
    execFileSync('useradd', ['-M', '-r', '-U', '-s', '/usr/sbin/nologin', user.name]);
    user.uid = Number(execFileSync('id', ['-u', user.name], { encoding: 'utf8' }).trim());
    user.gid = Number(execFileSync('id', ['-g', user.name], { encoding: 'utf8' }).trim());
    // The socket's directory must be reachable by the user (the data dir is root's own).
    sockDir = mkdtempSync(join(tmpdir(), 'realm-lu-sock-'));
    chmodSync(sockDir, 0o755);
    t = await startTestDaemon({ warm: 0, socket: join(sockDir, 'api.sock') });
    port = Number(new URL(t.url).port);
  });

  after(async () => {
    if (skip) return;
    try {
      await t.close();
      assert.deepEqual(await leftovers({ dataDir: t.dataDir, cgroupRoot: t.cgroupRoot }), []);
      removeTestDirs(t);
    } finally {
      rmSync(sockDir, { recursive: true, force: true });
      execFileSync('userdel', [user.name]);
    }
  });

  void it('(a) over loopback TCP without a token, a local user mints no token (401)', async () => {
    const r = await as(user, { method: 'POST', path: '/v1/tokens', body: { name: 'mine' }, port });
    assert.equal(r.status, 401, r.text);
    assert.equal(r.json.error?.code, 'UNAUTHORIZED');
    assert.equal((await as(user, { method: 'GET', path: '/v1/sandboxes', port })).status, 401);
    assert.equal((await as(user, { method: 'GET', path: '/v1/health', port })).status, 200, 'health stays open');
    assert.equal((await t.client.request<{ tokens: unknown[] }>('GET', '/v1/tokens')).tokens.length, 0, 'a token was made');
  });

  void it("(b) on the socket the user is itself: its tokens act as it, admin routes are refused, others' tokens do not exist", async () => {
    const rootToken = (await t.client.request<{ id: string }>('POST', '/v1/tokens', { name: 'root-ci' })).id;
    const made = await as(user, { method: 'POST', path: '/v1/tokens', body: { name: 'mine' }, socket: t.socket });
    assert.equal(made.status, 201, made.text);
    const token = made.json.token as string;
    const listed = await as(user, { method: 'GET', path: '/v1/tokens', socket: t.socket });
    assert.deepEqual(
      (listed.json.tokens as { name: string; owner: string }[]).map((x) => [x.name, x.owner]),
      [['mine', `uid:${user.uid}`]],
      'the user sees only its own token, owned by its uid',
    );
    assert.equal(
      (await as(user, { method: 'DELETE', path: `/v1/tokens/${rootToken}`, socket: t.socket })).status,
      404,
      "root's token is not the user's to revoke",
    );
    for (const via of [{ socket: t.socket }, { port, token }]) {
      for (const [method, path, body] of [
        ['POST', '/v1/images/prune', undefined],
        ['DELETE', '/v1/images/host', undefined],
        ['POST', '/v1/images/pull', { ref: '127.0.0.1:1/x:y' }],
        ['POST', '/v1/images/build', { name: 'x', from: 'debian:bookworm' }],
        ['POST', '/v1/images/import', undefined],
      ] as const) {
        const r = await as(user, { method, path, ...(body ? { body } : {}), ...via });
        assert.equal(r.status, 403, `${method} ${path} ${JSON.stringify(via)}: ${r.text}`);
        assert.equal(r.json.error?.code, 'FORBIDDEN');
      }
    }
    // The user's token is the user, not more: over TCP it lists the same one token.
    const overTcp = await as(user, { method: 'GET', path: '/v1/tokens', port, token });
    assert.deepEqual(
      (overTcp.json.tokens as { name: string }[]).map((x) => x.name),
      ['mine'],
    );
    // Root's view: both tokens; root revokes them.
    const all = await t.client.request<{ tokens: { id: string; owner: string }[] }>('GET', '/v1/tokens');
    assert.deepEqual(all.tokens.map((x) => x.owner).sort(), ['uid:0', `uid:${user.uid}`].sort());
    for (const x of all.tokens) await t.client.request('DELETE', `/v1/tokens/${x.id}`);
    assert.equal((await as(user, { method: 'GET', path: '/v1/tokens', port, token })).status, 401, 'a revoked token still works');
  });

  void it('(c) a workspace clones only what the user can read: a root-only repository is refused and copied nowhere', async () => {
    const marker = `root-only-secret-${nonce()}`;
    const secret = mkdtempSync(join(tmpdir(), 'realm-lu-rootrepo-'));
    const mine = mkdtempSync(join(tmpdir(), 'realm-lu-userrepo-'));
    const git = (cwd: string, ...args: string[]): string =>
      execFileSync('git', ['-c', 'user.name=t', '-c', 'user.email=t@t', ...args], { cwd, encoding: 'utf8' });
    try {
      chmodSync(secret, 0o700); // root's, and only root's
      git(secret, 'init', '-q', '-b', 'main');
      writeFileSync(join(secret, 'secret.txt'), marker);
      git(secret, 'add', '.');
      git(secret, 'commit', '-q', '-m', 'secret');
      const name = `lu${tag}`;
      for (const via of [{ port }, { socket: t.socket }]) {
        const r = await as(user, {
          method: 'POST',
          path: '/v1/workspaces',
          body: { name, repo: secret, network: 'none' },
          ...via,
        });
        assert.ok(
          r.status === 401 || r.status === 400,
          `${JSON.stringify(via)}: the root-only repository was cloned for the user: ${r.status} ${r.text}`,
        );
        if (via.socket) assert.match(r.text, /not in a git repository you can read/);
      }
      assert.deepEqual(await t.daemon.engine.workspaces.list(), []);
      assert.deepEqual(filesHolding(t.dataDir, marker), [], 'a copy of the root-only repository is in the data dir');
      assert.ok(!existsSync(join(t.dataDir, 'volumes', `ws-${name}`)));

      // The user's own repository is cloned, as the user, and is the user's workspace.
      const own = `own-${nonce()}`;
      git(mine, 'init', '-q', '-b', 'main');
      writeFileSync(join(mine, 'mine.txt'), own);
      git(mine, 'add', '.');
      git(mine, 'commit', '-q', '-m', 'mine');
      execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, mine]);
      const ok = await as(user, {
        method: 'POST',
        path: '/v1/workspaces',
        body: { name, repo: mine, network: 'none' },
        socket: t.socket,
      });
      assert.equal(ok.status, 201, ok.text);
      const read = await as(user, {
        method: 'POST',
        path: `/v1/sandboxes/ws-${name}/exec`,
        body: { command: 'cat /workspace/mine.txt' },
        socket: t.socket,
      });
      assert.equal(read.json.stdout, own, read.text);
      const ws = await t.daemon.engine.workspaces.get(name);
      assert.equal(ws.sandbox.owner, `uid:${user.uid}`);
      // Root sees it too; the user deletes it.
      assert.equal((await t.client.request<{ workspaces: unknown[] }>('GET', '/v1/workspaces')).workspaces.length, 1);
      assert.equal((await as(user, { method: 'DELETE', path: `/v1/workspaces/${name}`, socket: t.socket })).status, 204);
    } finally {
      rmSync(secret, { recursive: true, force: true });
      rmSync(mine, { recursive: true, force: true });
    }
  });

  void it("(d) root's sandboxes and volumes do not exist for the user (404), its own do", async () => {
    const vol = `rootvol-${tag}`;
    const sb = await Sandbox.create({ name: `root-sb-${tag}`, volumes: [{ volume: vol, path: '/data' }] }, t.client);
    try {
      // Over TCP without a token: nothing (on main this ran a command in root's sandbox).
      const tcp = await as(user, { method: 'POST', path: `/v1/sandboxes/${sb.id}/exec`, body: { command: 'id -u' }, port });
      assert.equal(tcp.status, 401, tcp.text);
      const list = await as(user, { method: 'GET', path: '/v1/sandboxes', socket: t.socket });
      assert.deepEqual(list.json.sandboxes, [], list.text);
      for (const ref of [sb.id, `root-sb-${tag}`]) {
        for (const [method, path, body] of [
          ['GET', `/v1/sandboxes/${ref}`, undefined],
          ['POST', `/v1/sandboxes/${ref}/exec`, { command: 'id -u' }],
          ['GET', `/v1/sandboxes/${ref}/files?path=/etc/hostname`, undefined],
          ['GET', `/v1/sandboxes/${ref}/processes`, undefined],
          ['POST', `/v1/sandboxes/${ref}/stop`, undefined],
          ['DELETE', `/v1/sandboxes/${ref}`, undefined],
        ] as const) {
          const r = await as(user, { method, path, ...(body ? { body } : {}), socket: t.socket });
          assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
          assert.equal(r.json.error?.code, 'SANDBOX_NOT_FOUND');
        }
      }
      // Nor through its WebSocket routes: the socket says SANDBOX_NOT_FOUND and runs nothing.
      for (const path of [`/v1/sandboxes/${sb.id}/exec/ws`, `/v1/sandboxes/${sb.id}/processes/p1/attach`]) {
        const w = await as(user, { method: 'GET', path, upgrade: true, socket: t.socket });
        assert.equal(w.status, 101, w.text);
        assert.equal((w.json.error as { code?: string } | undefined)?.code, 'SANDBOX_NOT_FOUND', w.text);
      }
      assert.equal((await sb.exec('echo alive')).stdout, 'alive\n', "root's sandbox was touched");
      // Root's volume: not listed, not removable, not mountable.
      assert.deepEqual((await as(user, { method: 'GET', path: '/v1/volumes', socket: t.socket })).json.volumes, []);
      assert.equal((await as(user, { method: 'DELETE', path: `/v1/volumes/${vol}`, socket: t.socket })).status, 404);
      const steal = await as(user, {
        method: 'POST',
        path: '/v1/sandboxes',
        body: { volumes: [{ volume: vol, path: '/x' }] },
        socket: t.socket,
      });
      assert.equal(steal.status, 409, steal.text);
      // Its own sandbox: made, used, listed for it and for root.
      const own = await as(user, { method: 'POST', path: '/v1/sandboxes', body: {}, socket: t.socket });
      assert.equal(own.status, 201, own.text);
      const id = own.json.id as string;
      const ran = await as(user, {
        method: 'POST',
        path: `/v1/sandboxes/${id}/exec`,
        body: { command: 'echo mine' },
        socket: t.socket,
      });
      assert.equal(ran.json.stdout, 'mine\n', ran.text);
      assert.deepEqual(
        ((await as(user, { method: 'GET', path: '/v1/sandboxes', socket: t.socket })).json.sandboxes as { id: string }[]).map(
          (s) => s.id,
        ),
        [id],
      );
      assert.deepEqual((await Sandbox.list({}, t.client)).map((s) => s.id).sort(), [sb.id, id].sort());
      assert.equal((await as(user, { method: 'DELETE', path: `/v1/sandboxes/${id}`, socket: t.socket })).status, 204);
    } finally {
      await sb.destroy();
      await t.client.request('DELETE', `/v1/volumes/${vol}`);
    }
  });

  void it('(e) --anonymous runs lets a run through without a token, and nothing else', async () => {
    const open = await startTestDaemon({ warm: 0, anonymous: ['runs'] });
    try {
      const p = Number(new URL(open.url).port);
      const r = await as(user, { method: 'POST', path: '/v1/runs', body: { language: 'bash', code: 'echo anon' }, port: p });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.stdout, 'anon\n');
      assert.equal((await as(user, { method: 'GET', path: '/v1/languages', port: p })).status, 200);
      assert.equal((await as(user, { method: 'GET', path: '/api/v2/runtimes', port: p })).status, 200);
      const piston = await as(user, {
        method: 'POST',
        path: '/api/v2/execute',
        body: { language: 'bash', files: [{ content: 'echo piston' }] },
        port: p,
      });
      assert.equal(piston.status, 200, piston.text);
      for (const [method, path, body] of [
        ['POST', '/v1/sandboxes', {}],
        ['GET', '/v1/sandboxes', undefined],
        ['POST', '/v1/tokens', { name: 'x' }],
        ['GET', '/v1/volumes', undefined],
        ['POST', '/v1/images/prune', undefined],
        ['POST', '/mcp', {}],
        ['GET', '/v1/node', undefined],
      ] as const) {
        const x = await as(user, { method, path, ...(body ? { body } : {}), port: p });
        assert.equal(x.status, 401, `${method} ${path}: ${x.text}`);
      }
      // A daemon that opened nothing: no run without a token either.
      assert.equal(
        (await as(user, { method: 'POST', path: '/v1/runs', body: { language: 'bash', code: 'echo anon' }, port })).status,
        401,
      );
      assert.deepEqual(await open.daemon.engine.listSandboxes(), []);
    } finally {
      await open.close();
      removeTestDirs(open);
    }
  });
});
