/**
 * wasi:http/incoming-handler components on the gateway (`realm push` of a component): served at
 * /NAME/… by realm-wasm-http, each request in a fresh instance with the app's memory cap, fuel
 * and deadline. The components are built from WAT here (test/helpers/http-component.ts). Skipped
 * (saying why) when the node cannot offer the wasm driver.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AppError, apps } from '@realm/sdk';
import { probeCgroups } from '../../src/drivers/shared/cgroups.js';
import { leftovers, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { HANDLER_WAT, PROXY_WAT, PROXY_WORLD, httpComponent } from '../helpers/http-component.js';
import { component, wasmSkipReason, wat } from '../helpers/wasm.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping gateway component tests: ${skip}`);

/** A handler that also imports wasi:filesystem, which the gateway does not give components. */
const FS_WORLD = `world files {
  import wasi:filesystem/preopens@0.2.12;
  import wasi:http/types@0.2.12;
  export wasi:http/incoming-handler@0.2.12;
}`;
const FS_WAT = `(module
  (import "wasi:filesystem/preopens@0.2.12" "get-directories" (func $dirs (param i32)))
  (memory (export "memory") 1)
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param i32 i32) (call $dirs (i32.const 0))))`;

/**
 * A component that declares wasi:http's fields.get with a u32 for its name (a component states its
 * imports' types itself): the host must refuse the call, not read a u32 as a string.
 */
const MISTYPED_WORLD = `world mistyped {
  import wasi:http/types@0.2.12;
  export wasi:http/incoming-handler@0.2.12;
}
package wasi:http@0.2.12 {
  interface types {
    resource fields {
      constructor();
      append: func(name: string, value: list<u8>);
      get: func(name: u32) -> list<list<u8>>;
    }
    resource incoming-request;
    resource response-outparam;
  }
  interface incoming-handler {
    use types.{incoming-request, response-outparam};
    handle: func(request: incoming-request, response-out: response-outparam);
  }
}`;
const MISTYPED_WAT = `(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $new (result i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.append" (func $append (param i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.get" (func $get (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "ab")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 4096))
  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param i32 i32) (local $h i32)
    (local.set $h (call $new))
    (call $append (local.get $h) (i32.const 0) (i32.const 1) (i32.const 1) (i32.const 1))
    (call $get (local.get $h) (i32.const 1) (i32.const 1024))))`;

const cgroups = probeCgroups();
const v1 = cgroups.ok && cgroups.manager.version === 1;

/** The CPU weights (v1 cpu.shares, v2 cpu.weight) of the sandboxes under a daemon's cgroup root. */
async function cpuWeights(root: string): Promise<number[]> {
  if (!cgroups.ok) return [];
  const mounts = cgroups.manager.describe();
  const dir = join(v1 ? (/cpu=(\S+)/.exec(mounts)?.[1] ?? '') : mounts.replace(/^unified=/, ''), root);
  const out: number[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const f = join(dir, e.name, v1 ? 'cpu.shares' : 'cpu.weight');
    if (existsSync(f)) out.push(Number((await readFile(f, 'utf8')).trim()));
  }
  return out;
}

async function errorOf(p: Promise<unknown>): Promise<{ code: string; status?: number; message: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code: string; status?: number; message: string };
  }
  throw new Error('expected a refusal');
}

async function jsonError(r: Response): Promise<string> {
  assert.equal(r.headers.get('content-type'), 'application/json');
  const e = (await r.json()) as { error: { code: string; message: string } };
  assert.ok(e.error.message.length > 0);
  return e.error.code;
}

void describe('gateway: wasi:http components', { skip }, () => {
  let t: TestDaemon;
  let gw: string;
  let handler: Buffer;
  let proxy: Buffer;
  let mistyped: Buffer;
  before(async () => {
    if (skip) return;
    // Built side by side (each a child process), while the daemon starts; after() stops it in any case.
    const daemon = startTestDaemon({ warm: 1, gateway: '127.0.0.1:0' });
    try {
      [handler, proxy, mistyped] = await Promise.all([
        httpComponent(HANDLER_WAT),
        httpComponent(PROXY_WAT, PROXY_WORLD, 'full'),
        httpComponent(MISTYPED_WAT, MISTYPED_WORLD, 'mistyped'),
      ]);
    } finally {
      t = await daemon;
    }
    gw = t.daemon.gatewayUrl ?? '';
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('serves a pushed component: its status, headers and body, the path and query, a POST body round trip', async () => {
    const pushed = await apps.push({ name: 'hello', module: handler }, t.client);
    assert.equal(pushed.size, handler.length);
    const r = await fetch(`${gw}/hello/x/y?q=1`);
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'text/plain');
    assert.equal(r.headers.get('x-component'), 'hello');
    assert.equal(await r.text(), 'hello from a component: /x/y?q=1');
    const created = await fetch(`${gw}/hello/s`);
    assert.equal(created.status, 201);
    assert.equal(await created.text(), 'hello from a component: /s');
    const body = randomBytes(50_000);
    const echo = await fetch(`${gw}/hello/echo`, { method: 'POST', body });
    assert.equal(echo.status, 200);
    assert.deepEqual(Buffer.from(await echo.arrayBuffer()), body);
  });

  void it("hosts the proxy world's fields, request, clocks, poll, random, stdio and denied outgoing requests", async () => {
    await apps.push({ name: 'proxy', module: proxy }, t.client);
    const r = await fetch(`${gw}/proxy/p?q`, { method: 'PATCH' });
    assert.equal(r.status, 200);
    const body = Buffer.from(await r.arrayBuffer());
    // What each call returned, where the handler stored it (see PROXY_WAT).
    const u8 = (at: number): number => body.readUInt8(at - 1024);
    const u32 = (at: number): number => body.readUInt32LE(at - 1024);
    const u64 = (at: number): number => Number(body.readBigUInt64LE(at - 1024));
    const host = new URL(gw).host;
    assert.equal(u8(1024), 8, 'method: patch');
    assert.ok(u32(1044) >= 2, 'the request headers are entries');
    assert.equal(u32(1052), 1, 'one host header');
    assert.equal(u32(1056), 0, 'no x-none header');
    assert.deepEqual([u8(1060), u8(1068)], [0, 0], 'from-list and set succeed');
    assert.deepEqual([u8(1072), u8(1073)], [1, 0], 'a name with a space is invalid-syntax');
    assert.deepEqual([u8(1076), u8(1077)], [1, 2], "the request's headers are immutable");
    assert.deepEqual([u8(1080), u32(1088)], [0, 0], 'deleted: no entries left');
    assert.deepEqual([u8(1092), u8(1096)], [1, 0], 'scheme: some(HTTP)');
    assert.deepEqual([u8(1108), u32(1116)], [1, host.length], 'authority');
    assert.deepEqual([u32(1132), u32(1136)], [1, 1], 'poll and ready on a 1 ms clock');
    assert.ok(u64(1144) > 1.7e9, 'wall clock seconds');
    assert.equal(u32(1164), 16, 'random bytes');
    assert.deepEqual([u8(1184), u64(1192)], [1, 5000], 'request options keep their timeout');
    assert.deepEqual([u32(1200), u8(1204)], [0, 2], 'an outgoing request keeps its method (post)');
    assert.deepEqual([u8(1216), u8(1224)], [1, 15], 'sending it is HTTP-request-denied');
    assert.ok(body.subarray(224).toString('latin1').endsWith(host), "the host header's value");
  });

  void it('answers a loop past its deadline, a trap and fuel run out with 5xx JSON, and every app goes on', async () => {
    await apps.push({ name: 'slow', module: handler, timeout: '300ms' }, t.client);
    await apps.push({ name: 'fuel', module: handler, fuel: 1_000_000 }, t.client);
    const cases: [string, number, string][] = [
      ['/slow/loop', 504, 'APP_TIMEOUT'],
      ['/slow/trap', 502, 'APP_FAILED'],
      ['/fuel/loop', 502, 'APP_FAILED'],
    ];
    for (const [path, status, code] of cases) {
      const r = await fetch(gw + path);
      assert.equal(r.status, status, path);
      assert.equal(await jsonError(r), code, path);
      assert.equal(await (await fetch(`${gw}/hello/after`)).text(), 'hello from a component: /after');
    }
    // The app that ran into its deadline yields CPU: its sandbox's weight is a sixteenth of the others'.
    assert.ok((await cpuWeights(t.cgroupRoot)).includes(v1 ? 64 : 6), 'a sandbox with a lowered CPU weight');
    // The same apps answer next, with no earlier request's deadline reaching them.
    for (let i = 0; i < 4; i++) assert.equal(await (await fetch(`${gw}/slow/q${i}`)).text(), `hello from a component: /q${i}`);
    assert.equal((await fetch(`${gw}/fuel/ok`)).status, 200);
    // A loop and another app's request at once.
    const [loop, good] = await Promise.all([fetch(`${gw}/slow/loop`), fetch(`${gw}/hello/meanwhile`)]);
    assert.equal(await good.text(), 'hello from a component: /meanwhile');
    assert.equal(loop.status, 504);
    await loop.body?.cancel();
  });

  void it("holds each request's memory cap, in a fresh instance every time", async () => {
    await apps.push({ name: 'small', module: handler, memory: '8m' }, t.client);
    await apps.push({ name: 'large', module: handler, memory: '32m' }, t.client);
    // The handler grows its memory a page (64 KiB) at a time until refused.
    for (let i = 0; i < 2; i++) assert.equal(await (await fetch(`${gw}/small/grow`)).text(), 'pages: 128');
    assert.equal(await (await fetch(`${gw}/large/grow`)).text(), 'pages: 512');
    // Each request's peak memory is reported: its memory grew to the cap, and the host's share is small.
    const MiB = 2 ** 20;
    const peak = async (name: string): Promise<number> => {
      const { stats } = await apps.get(name, t.client);
      assert.equal(stats.failed, 0, name);
      return stats.memoryPeakBytes ?? 0;
    };
    const [small, large] = [await peak('small'), await peak('large')];
    assert.ok(small >= 8 * MiB && small < 12 * MiB, `small: ${small} bytes`);
    assert.ok(large >= 32 * MiB && large < 36 * MiB, `large: ${large} bytes`);
    await apps.push({ name: 'tiny', module: handler, memory: '8m' }, t.client);
    assert.equal((await apps.get('tiny', t.client)).stats.memoryPeakBytes, null);
    await (await fetch(`${gw}/tiny/hi`)).text();
    const tiny = await peak('tiny');
    assert.ok(tiny > 0 && tiny < 4 * MiB, `tiny: ${tiny} bytes`);
  });

  void it('answers a host call made with types other than its WIT with a 502, and the app goes on', async () => {
    await apps.push({ name: 'mistyped', module: mistyped }, t.client);
    for (let i = 0; i < 2; i++) {
      const r = await fetch(`${gw}/mistyped/`);
      assert.equal(r.status, 502);
      const e = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(e.error.code, 'APP_FAILED');
      assert.match(e.error.message, /fields\.get called with arguments of another type/);
    }
  });

  void it('refuses a component of another world with 422 APP_UNSUPPORTED, deploying nothing', async () => {
    const command = await component(await wat(`(module (memory (export "memory") 1) (func (export "_start")))`));
    const files = await httpComponent(FS_WAT, FS_WORLD, 'files');
    const before = (await apps.list(t.client)).map((a) => a.name);
    const cmd = await errorOf(apps.push({ name: 'cmd', module: command }, t.client));
    assert.ok(cmd instanceof AppError);
    assert.equal(cmd.code, 'APP_UNSUPPORTED');
    assert.equal(cmd.status, 422);
    assert.match(cmd.message, /wasi:cli\/run.*not wasi:http\/incoming-handler/);
    const fs = await errorOf(apps.push({ name: 'files', module: files }, t.client));
    assert.equal(fs.code, 'APP_UNSUPPORTED');
    assert.equal(fs.status, 422);
    assert.match(fs.message, /wasi:filesystem/);
    assert.deepEqual(
      (await apps.list(t.client)).map((a) => a.name),
      before,
    );
    assert.equal((await fetch(`${gw}/cmd/x`)).status, 404);
  });

  void it('serves a component again after a daemon restart; removing apps ends their runners and sandboxes', async () => {
    const { dataDir, cgroupRoot } = t;
    await t.close();
    t = await startTestDaemon({ warm: 1, gateway: '127.0.0.1:0', dataDir, cgroupRoot });
    gw = t.daemon.gatewayUrl ?? '';
    assert.equal(await (await fetch(`${gw}/hello/again`)).text(), 'hello from a component: /again');
    for (const a of await apps.list(t.client)) await apps.remove(a.name, t.client);
    assert.equal((await fetch(`${gw}/hello/again`)).status, 404);
    assert.deepEqual(await leftovers(t), []);
  });
});
