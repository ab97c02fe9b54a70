/**
 * The app gateway: `realm push` (API, SDK, CLI) and CGI-style WASI preview 1 modules served at
 * /NAME/…, each request in a fresh instance with the app's limits. Modules are built from source
 * here (C with clang --target=wasm32-wasi, WAT with wat2wasm, a component with jco). Skipped
 * (saying why) when the node cannot offer the wasm driver.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppError, Client, ConflictError, NotFoundError, apps } from '@realm/sdk';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { Tokens } from '../../src/daemon/auth.js';
import { type CliResult, realm as realmCli } from '../helpers/cli.js';
import { leftovers, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { cWasm, component, wasmSkipReason, wat } from '../helpers/wasm.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping gateway tests: ${skip}`);

/** One CGI program, its behaviour chosen by PATH_INFO. */
const APP_C = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int counter;
volatile unsigned long spins;

static const char *env(const char *name) {
  const char *v = getenv(name);
  return v ? v : "";
}

int main(void) {
  const char *path = env("PATH_INFO");
  if (!strcmp(path, "/trap")) __builtin_trap();
  if (!strcmp(path, "/loop")) for (;;) spins++;
  if (!strcmp(path, "/slow")) {
    for (unsigned long i = 0; i < 2000000000UL; i++) spins++;
    printf("Content-Type: text/plain\n\nslow done");
    return 0;
  }
  if (!strcmp(path, "/count")) {
    counter++;
    printf("Content-Type: text/plain\n\n%d", counter);
    return 0;
  }
  if (!strcmp(path, "/missing")) {
    printf("Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-App: gone\r\n\r\nnothing here\n");
    return 0;
  }
  if (!strcmp(path, "/big")) {
    static char chunk[1 << 20];
    memset(chunk, 'x', sizeof chunk);
    printf("Content-Type: text/plain\n\n");
    int n = atoi(env("QUERY_STRING"));
    for (int i = 0; i < (n ? n : 80); i++) fwrite(chunk, 1, sizeof chunk, stdout);
    return 0;
  }
  if (!strcmp(path, "/grow")) {
    int mib = 0;
    char *volatile p;
    while ((p = malloc(1 << 20))) p[0] = 1, mib++;
    printf("Content-Type: text/plain\n\n%d", mib);
    return 0;
  }
  if (!strcmp(path, "/leave") || !strcmp(path, "/peek")) {
    /* The same heap block each time: /leave fills it, /peek counts what an earlier request left. */
    volatile unsigned char *p = malloc(1 << 16);
    int left = 0;
    for (int i = 0; i < 1 << 16; i++) left += p[i] == 0x5a;
    if (path[1] == 'l') memset((void *)p, 0x5a, 1 << 16);
    printf("Content-Type: text/plain\n\n%d", left);
    return 0;
  }
  if (!strcmp(path, "/nohead")) {
    printf("just some text");
    return 0;
  }
  if (!strcmp(path, "/echo")) {
    printf("Content-Type: application/octet-stream\nX-Method: %s\nX-Query: %s\nX-Length: %s\nX-Test: %s\nX-Type: %s\nX-Protocol: %s\n\n",
           env("REQUEST_METHOD"), env("QUERY_STRING"), env("CONTENT_LENGTH"), env("HTTP_X_TEST"), env("CONTENT_TYPE"),
           env("SERVER_PROTOCOL"));
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
    return 0;
  }
  printf("Content-Type: text/plain\n\nhello from %s\n", path);
  return 0;
}
`;

/** bin/realm against the daemon at `url`, with its admin token unless told another. */
const realm = (url: string, args: string[], token?: string): Promise<CliResult> =>
  realmCli(args, { url, ...(token !== undefined ? { token } : {}) });

async function errorOf(p: Promise<unknown>): Promise<{ code: string; status?: number }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; status?: number };
  }
  throw new Error('expected a refusal');
}

/** A GET with headers fetch will not send (Host): status, body, and the error code of a JSON error. */
function rawGet(url: string, headers: Record<string, string>): Promise<{ status: number; body: string; code?: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let code: string | undefined;
        if (res.headers['content-type'] === 'application/json')
          code = (JSON.parse(body) as { error: { code: string } }).error.code;
        resolve({ status: res.statusCode ?? 0, body, ...(code ? { code } : {}) });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

void describe('gateway', { skip }, () => {
  let t: TestDaemon;
  let gw: string;
  let mod: Buffer;
  let userA: Client;
  let userB: Client;
  let tokenA: string;
  let closed = false;
  const dirs: string[] = [];
  before(async () => {
    if (skip) return;
    mod = await cWasm(APP_C);
    t = await startTestDaemon({ warm: 1, gateway: '127.0.0.1:0' });
    gw = t.daemon.gatewayUrl ?? '';
    // Two users with tokens of their own (made in the daemon's store, as `realm token create` would).
    const store = new SqliteStore(join(t.dataDir, 'state.db'));
    try {
      const tokens = new Tokens(store, join(t.dataDir, 'admin-token'));
      tokenA = (await tokens.create('a', 'uid:4001')).token;
      userA = new Client({ url: t.url, token: tokenA });
      userB = new Client({ url: t.url, token: (await tokens.create('b', 'uid:4002')).token });
    } finally {
      store.close();
    }
  });
  after(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (!t) return;
    if (!closed) await t.close();
    removeTestDirs(t);
  });

  void it('serves a pushed module: status, headers, body, query and a POST body round trip', async () => {
    const pushed = await apps.push({ name: 'hello', module: mod }, t.client);
    assert.equal(pushed.visibility, 'local');
    assert.equal(pushed.size, mod.length);
    assert.match(pushed.sha256, /^[0-9a-f]{64}$/);
    const r = await fetch(`${gw}/hello/world`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(await r.text(), 'hello from /world\n');
    const missing = await fetch(`${gw}/hello/missing`);
    assert.equal(missing.status, 404);
    assert.equal(missing.statusText, 'Not Found');
    assert.equal(missing.headers.get('x-app'), 'gone');
    assert.equal(await missing.text(), 'nothing here\n');
    const body = Buffer.from(Array.from({ length: 50_000 }, (_, i) => i % 251));
    const echo = await fetch(`${gw}/hello/echo?a=1&b=two`, {
      method: 'POST',
      body,
      headers: { 'x-test': 'yes', 'content-type': 'application/x-thing' },
    });
    assert.equal(echo.status, 200);
    assert.equal(echo.headers.get('x-method'), 'POST');
    assert.equal(echo.headers.get('x-query'), 'a=1&b=two');
    assert.equal(echo.headers.get('x-length'), String(body.length));
    assert.equal(echo.headers.get('x-test'), 'yes');
    assert.equal(echo.headers.get('x-type'), 'application/x-thing');
    assert.equal(echo.headers.get('x-protocol'), 'HTTP/1.1');
    assert.deepEqual(Buffer.from(await echo.arrayBuffer()), body);
    const none = await fetch(`${gw}/nope/x`);
    assert.equal(none.status, 404);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'APP_NOT_FOUND');
  });

  void it('serves a local app only under a loopback name: a DNS-rebound name or a foreign page gets a 4xx', async () => {
    await apps.push({ name: 'homely', module: mod }, t.client);
    await apps.push({ name: 'open', module: mod, visibility: 'public' }, t.client);
    const port = new URL(gw).port;
    const rebound = await rawGet(`${gw}/homely/secret`, { host: `evil.example:${port}` });
    assert.equal(rebound.status, 421);
    assert.equal(rebound.code, 'HOST_NOT_ALLOWED');
    // The same for a name that does not exist: a rebinding page learns nothing of local apps.
    assert.equal((await rawGet(`${gw}/nothing/x`, { host: `evil.example:${port}` })).code, 'HOST_NOT_ALLOWED');
    const page = await rawGet(`${gw}/homely/secret`, { host: `localhost:${port}`, origin: 'https://evil.example' });
    assert.equal(page.status, 403);
    assert.equal(page.code, 'ORIGIN_NOT_ALLOWED');
    for (const host of [`localhost:${port}`, `app.localhost:${port}`, `127.0.0.1:${port}`, `127.0.0.2`]) {
      const ok = await rawGet(`${gw}/homely/secret`, { host, origin: `http://localhost:${port}` });
      assert.deepEqual([ok.status, ok.body], [200, 'hello from /secret\n'], host);
    }
    // A public app answers to any name and any page.
    const pub = await rawGet(`${gw}/open/x`, { host: 'apps.example.com', origin: 'https://evil.example' });
    assert.deepEqual([pub.status, pub.body], [200, 'hello from /x\n']);
  });

  void it('gives every request a fresh instance: a global counter answers 1 each time', async () => {
    await apps.push({ name: 'counter', module: mod }, t.client);
    for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${gw}/counter/count`)).text(), '1');
  });

  void it('leaves nothing of a request in memory for the next one (the same runner, its memory slot reused)', async () => {
    await apps.push({ name: 'slate', module: mod, replicas: 1 }, t.client);
    for (let i = 0; i < 3; i++) assert.equal(await (await fetch(`${gw}/slate/leave`)).text(), '0');
    assert.equal(await (await fetch(`${gw}/slate/peek`)).text(), '0');
  });

  void it("holds each request to the app's memory cap: malloc fails short of it, every time", async () => {
    await apps.push({ name: 'grower', module: mod, memory: '16m' }, t.client);
    for (let i = 0; i < 3; i++) {
      const text = await (await fetch(`${gw}/grower/grow`)).text();
      const mib = Number(text);
      assert.ok(!Number.isNaN(mib), text);
      assert.ok(mib >= 8 && mib < 16, `${mib} MiB`);
    }
    // Each request's peak memory is reported: the instance grew to its cap (16 MiB) and no further.
    const { stats } = await apps.get('grower', t.client);
    assert.equal(stats.requests, 3);
    assert.equal(stats.failed, 0);
    const peak = stats.memoryPeakBytes ?? 0;
    assert.ok(peak > 15 * 2 ** 20 && peak <= 16 * 2 ** 20, `${peak} bytes`);
  });

  void it('answers a trap, a loop past the deadline, fuel and a non-CGI answer with 5xx JSON, and goes on serving', async () => {
    await apps.push({ name: 'bad', module: mod, timeout: '300ms' }, t.client);
    await apps.push({ name: 'fuel', module: mod, fuel: 1_000_000 }, t.client);
    await apps.push({ name: 'good', module: mod }, t.client);
    const cases: [string, number, string][] = [
      ['/bad/trap', 502, 'APP_FAILED'],
      ['/bad/loop', 504, 'APP_TIMEOUT'],
      ['/fuel/loop', 502, 'APP_FAILED'],
      ['/bad/nohead', 502, 'APP_FAILED'],
    ];
    for (const [path, status, code] of cases) {
      const r = await fetch(gw + path);
      assert.equal(r.status, status, path);
      assert.equal(r.headers.get('content-type'), 'application/json');
      const e = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(e.error.code, code, path);
      assert.ok(e.error.message.length > 0);
      // Another app (and the same one) still answers.
      assert.equal(await (await fetch(`${gw}/good/x`)).text(), 'hello from /x\n');
    }
    // Quick requests to the app whose request just timed out: no earlier request's deadline reaches them.
    for (let i = 0; i < 6; i++) assert.equal(await (await fetch(`${gw}/bad/q${i}`)).text(), `hello from /q${i}\n`);
    const [trap, good] = await Promise.all([fetch(`${gw}/bad/loop`), fetch(`${gw}/good/y`)]);
    assert.equal(trap.status, 504);
    assert.equal(await good.text(), 'hello from /y\n');
    await trap.body?.cancel();
  });

  void it('lets requests running on an app finish when it is replaced or removed; new ones get the new version', async () => {
    await apps.push({ name: 'swap', module: mod, replicas: 1 }, t.client);
    for (const change of ['replace', 'remove'] as const) {
      // A request that takes a while, started before the change (its runner may still be starting).
      const t0 = Date.now();
      const slow = fetch(`${gw}/swap/slow`).then(async (r) => [r.status, await r.text()] as const);
      await new Promise((r) => setTimeout(r, 150));
      if (change === 'replace') {
        await apps.push({ name: 'swap', module: mod, replicas: 2 }, t.client);
        // The new version serves at once, beside the one finishing.
        assert.equal(await (await fetch(`${gw}/swap/new`)).text(), 'hello from /new\n');
      } else await apps.remove('swap', t.client);
      assert.deepEqual(await slow, [200, 'slow done'], change);
      console.log(`# ${change}: the request running on the old version answered after ${Date.now() - t0} ms`);
    }
    assert.equal((await fetch(`${gw}/swap/x`)).status, 404);
  });

  void it('keeps every request to its deadline, however many ran before it', async () => {
    await apps.push({ name: 'steady', module: mod, timeout: '3s', replicas: 1 }, t.client);
    // Each request's deadline was once a timer thread sleeping out its time: 60 of them within 3 s
    // passed the runner's pids limit, and a loop after them had no deadline.
    for (let i = 0; i < 60; i++) assert.equal(await (await fetch(`${gw}/steady/q`)).text(), 'hello from /q\n');
    const r = await fetch(`${gw}/steady/loop`);
    assert.equal(r.status, 504);
    assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'APP_TIMEOUT');
  });

  void it('runs as many requests of an app at once as its replicas, each runner in the app sandbox', async () => {
    const runnersOf = (): Map<string, number> => {
      const boxes = new Map<string, number>();
      for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
        try {
          if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'realm-wasm') continue;
          const cg = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
          const box = new RegExp(`/${t.cgroupRoot}/([^/\\n]+)/`).exec(cg)?.[1];
          if (box) boxes.set(box, (boxes.get(box) ?? 0) + 1);
        } catch {
          /* ended meanwhile */
        }
      }
      return boxes;
    };
    for (const [name, replicas] of [
      ['wide', 3],
      ['narrow', 1],
    ] as const) {
      const before = runnersOf();
      await apps.push({ name, module: mod, timeout: '1s', replicas }, t.client);
      // Three requests that each hold a runner for their whole deadline: as many runners start as the app may have.
      const answers = await Promise.all([1, 2, 3].map(() => fetch(`${gw}/${name}/loop`)));
      assert.deepEqual(
        answers.map((r) => r.status),
        [504, 504, 504],
      );
      for (const r of answers) await r.text();
      const added = [...runnersOf()].filter(([box]) => !before.has(box));
      assert.deepEqual(
        added.map(([, n]) => n),
        [replicas],
        name,
      );
    }
  });

  void it('streams a large body to a slow client whole (the app waits while the client does not read)', async () => {
    await apps.push({ name: 'stream', module: mod }, t.client);
    const got = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${gw}/stream/big?40`, (res) => {
        let n = 0;
        res.on('data', (c: Buffer) => (n += c.length));
        res.on('end', () => resolve(n));
        res.on('error', reject);
        // Not reading for a while: the socket, then the gateway's response, then the runner's output fill and stop.
        res.pause();
        setTimeout(() => res.resume(), 500);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(got, 40 * 1024 * 1024);
    assert.equal(await (await fetch(`${gw}/stream/after`)).text(), 'hello from /after\n');
  });

  void it('cuts a response past 64 MiB short, and the runner it killed is replaced', async () => {
    await apps.push({ name: 'big', module: mod }, t.client);
    const r = await fetch(`${gw}/big/big`);
    assert.equal(r.status, 200);
    await assert.rejects(r.arrayBuffer());
    for (let i = 0; i < 4; i++) assert.equal(await (await fetch(`${gw}/big/after`)).text(), 'hello from /after\n');
  });

  void it('runs a request written behind one that kills its runner on the next runner', async () => {
    // One runner: a second request is written to it while the first runs (the pool's pipeline).
    await apps.push({ name: 'big1', module: mod, replicas: 1 }, t.client);
    assert.equal(await (await fetch(`${gw}/big1/after`)).text(), 'hello from /after\n');
    const first = await fetch(`${gw}/big1/big`);
    assert.equal(first.status, 200);
    // The first is held by its unread body (backpressure) while the second reaches the runner.
    const second = fetch(`${gw}/big1/after`);
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(first.arrayBuffer());
    const r = await second;
    assert.equal(r.status, 200);
    assert.equal(await r.text(), 'hello from /after\n');
  });

  void it('refuses bad pushes with a 4xx and a stable code, deploying nothing', async () => {
    const importsMore = await wat(`(module (import "env" "nope" (func)) (func (export "_start")))`);
    const noStart = await wat(`(module (memory (export "memory") 1))`);
    const comp = await component(await wat(`(module (memory (export "memory") 1) (func (export "_start")))`));
    const cases: [string, Buffer, string, number][] = [
      ['notwasm', Buffer.from('#!/bin/sh\necho hi\n'), 'APP_INVALID', 400],
      ['imports', importsMore, 'APP_INVALID', 400],
      ['nostart', noStart, 'APP_INVALID', 400],
      ['comp', comp, 'APP_UNSUPPORTED', 422],
      ['a/b', mod, 'APP_INVALID', 400],
      ['Upper', mod, 'APP_INVALID', 400],
      ['-dash', mod, 'APP_INVALID', 400],
      ['x'.repeat(64), mod, 'APP_INVALID', 400],
    ];
    const before = (await apps.list(t.client)).map((a) => a.name);
    for (const [name, module, code, status] of cases) {
      const e = await errorOf(apps.push({ name, module }, t.client));
      assert.equal(e.code, code, name);
      assert.equal(e.status, status, name);
      assert.ok(e instanceof AppError, name);
    }
    assert.deepEqual(
      (await apps.list(t.client)).map((a) => a.name),
      before,
    );
    const memory = await errorOf(apps.push({ name: 'tiny', module: mod, memory: '1k' }, t.client));
    assert.equal(memory.code, 'INVALID_REQUEST');
    for (const replicas of [0, 17, 1.5]) {
      const e = await errorOf(apps.push({ name: 'tiny', module: mod, replicas }, t.client));
      assert.deepEqual([e.code, e.status], ['INVALID_REQUEST', 400], String(replicas));
    }
    assert.equal((await apps.push({ name: 'tiny', module: mod }, t.client)).replicas, 2);
  });

  void it("keeps users apart: B neither sees, removes nor overwrites A's app", async () => {
    await apps.push({ name: 'mine', module: mod }, userA);
    assert.deepEqual(
      (await apps.list(userA)).map((a) => a.name),
      ['mine'],
    );
    assert.deepEqual(await apps.list(userB), []);
    const get = await errorOf(apps.get('mine', userB));
    assert.ok(get instanceof NotFoundError);
    assert.equal(get.code, 'APP_NOT_FOUND');
    assert.equal((await errorOf(apps.remove('mine', userB))).code, 'APP_NOT_FOUND');
    const over = await errorOf(apps.push({ name: 'mine', module: mod, timeout: '1s' }, userB));
    assert.ok(over instanceof ConflictError);
    assert.equal(over.code, 'APP_NAME_TAKEN');
    assert.equal((await apps.get('mine', userA)).timeoutMs, 10_000);
    // The admin sees everyone's; the owner replaces its own.
    assert.ok((await apps.list(t.client)).some((a) => a.name === 'mine'));
    assert.equal((await apps.push({ name: 'mine', module: mod, timeout: '2s' }, userA)).timeoutMs, 2000);
    await apps.remove('mine', userA);
    assert.equal((await errorOf(apps.get('mine', userA))).code, 'APP_NOT_FOUND');
  });

  void it('realm push, push ls and push rm', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-push-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'app.wasm'), mod);
    writeFileSync(join(dir, 'bad.wasm'), 'not wasm');
    const pushed = await realm(
      t.url,
      ['push', 'cli-app', '--file', join(dir, 'app.wasm'), '--timeout', '2s', '--fuel', '50000000', '--replicas', '3', '--json'],
      tokenA,
    );
    assert.equal(pushed.code, 0, pushed.stderr);
    const app = JSON.parse(pushed.stdout) as { name: string; timeoutMs: number; fuel: number; replicas: number };
    assert.deepEqual([app.name, app.timeoutMs, app.fuel, app.replicas], ['cli-app', 2000, 50_000_000, 3]);
    assert.equal(await (await fetch(`${gw}/cli-app/cli`)).text(), 'hello from /cli\n');
    const table = await realm(t.url, ['push', 'ls'], tokenA);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /NAME\s+SHA256\s+SIZE\s+LIMITS\s+REPLICAS\s+VISIBILITY\s+CREATED\s+REQUESTS\s+FAILED\s+PEAK MEM/);
    assert.match(table.stdout, /cli-app\s+[0-9a-f]{12}\s.*\s3\s+local\s.*\s1\s+0\s+\d+\.\d [KM]iB\s*$/m);
    for (const n of ['0', '17', 'two']) {
      const wrong = await realm(t.url, ['push', 'cli-app', '--file', join(dir, 'app.wasm'), '--replicas', n], tokenA);
      assert.notEqual(wrong.code, 0, n);
      assert.match(wrong.stderr, /replicas/, n);
    }
    const ls = await realm(t.url, ['push', 'ls', '--json'], tokenA);
    assert.deepEqual(
      (JSON.parse(ls.stdout) as { name: string }[]).map((a) => a.name),
      ['cli-app'],
    );
    const bad = await realm(t.url, ['push', 'worse', '--file', join(dir, 'bad.wasm')], tokenA);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not WebAssembly/);
    const rm = await realm(t.url, ['push', 'rm', 'cli-app'], tokenA);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal((await fetch(`${gw}/cli-app/cli`)).status, 404);
  });

  void it('keeps apps across a daemon restart, and leaves nothing behind', async () => {
    await apps.push({ name: 'lasting', module: mod, visibility: 'public' }, t.client);
    const { dataDir, cgroupRoot } = t;
    await t.close();
    t = await startTestDaemon({ warm: 1, gateway: '127.0.0.1:0', dataDir, cgroupRoot });
    gw = t.daemon.gatewayUrl ?? '';
    const app = await apps.get('lasting', t.client);
    assert.equal(app.visibility, 'public');
    assert.equal(await (await fetch(`${gw}/lasting/again`)).text(), 'hello from /again\n');
    // Removing an app ends its runners and their sandbox; closing the daemon ends the others'.
    await apps.remove('lasting', t.client);
    assert.deepEqual(await leftovers(t), []);
    assert.equal(await (await fetch(`${gw}/good/z`)).text(), 'hello from /z\n');
    closed = true;
    await t.close();
    assert.deepEqual(await leftovers({ dataDir: t.dataDir, cgroupRoot: t.cgroupRoot }), []);
  });
});
