/**
 * Hostile WASI modules against the wasm driver's limits: memory bombs (growing in a loop, a
 * declared minimum over the cap, many memories and tables), endless loops with no calls (in
 * `_start` and in the start function that runs at instantiation), fuel, deep recursion, a compile
 * bomb against the runner's cgroup and deadline, the upload size limits, and imports realm does not provide. Each ends in its verdict, the daemon answers,
 * and nothing is left. (Runs once: see common.ts.)
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { run } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, type TestDaemon } from '../../helpers/daemon.js';
import { component, wasmFile, wasmSkipReason, wat } from '../../helpers/wasm.js';
import { assertContained } from '../common.js';
import { moduleOf, smallBody } from './binary.js';
import { watModule } from './common.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile limit tests: ${skip}`);

const MiB = 1024 ** 2;

/** Grow memory 0 by a MiB at a time until it fails; exit with the MiB reached. */
const GROW = `(loop $l (br_if $l (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (call $exit (i32.div_u (memory.size) (i32.const 16)))`;

void describe('hostile wasm modules: limits', { skip }, () => {
  let t: TestDaemon;
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0 });
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  const runWasm = (bytes: Buffer, opts: Partial<Parameters<typeof run>[0]> = {}) =>
    run({ language: 'wasm', files: [wasmFile(bytes)], timeout: '20s', ...opts }, t.client);

  void it('memory bomb: growing in a loop stops at the cap (a failed memory.grow), whatever maximum it declares', async () => {
    for (const memory of ['(memory (export "memory") 0)', '(memory (export "memory") 0 65536)']) {
      const r = await runWasm(await wat(watModule(GROW, '', memory)), { memory: '32m' });
      assert.equal(r.exitCode, 32, `${memory}: ${JSON.stringify(r)}`);
      assert.equal(r.verdict, 'runtime-error');
      assert.ok(r.memoryBytes <= 32 * MiB, `memoryBytes ${r.memoryBytes}`);
    }
    await assertContained(t);
  });

  void it('a declared minimum over the cap (4 GiB, and 64 MiB under 32m) is refused at load; nothing runs', async () => {
    for (const pages of [65536, 1024]) {
      const r = await runWasm(
        await wat(
          watModule(
            '(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))',
            '',
            `(memory (export "memory") ${pages})`,
          ),
        ),
        {
          memory: '32m',
        },
      );
      assert.equal(r.verdict, 'runtime-error', JSON.stringify(r));
      assert.match(r.stderr, /^error: .*memory/im);
      assert.equal(r.stdout, '');
    }
  });

  void it('many memories: a module gets one; a second memory or a seventeenth table is refused at load', async () => {
    const two = await runWasm(await wat(watModule('(call $exit (i32.const 0))', '(memory $b 1)'), ['multi-memory']), {
      memory: '32m',
    });
    assert.equal(two.verdict, 'runtime-error', JSON.stringify(two));
    assert.match(two.stderr, /^error: .*memor/im);
    const tables = Array.from({ length: 17 }, (_, i) => `(table $t${i} 1 funcref)`).join(' ');
    const many = await runWasm(await wat(watModule('(call $exit (i32.const 0))', tables)));
    assert.equal(many.verdict, 'runtime-error', JSON.stringify(many));
    assert.match(many.stderr, /^error: .*table/im);
    // A table past a million elements is refused too: tables are memory outside the linear cap.
    const huge = await runWasm(await wat(watModule('(call $exit (i32.const 0))', '(table 2000000 funcref)')));
    assert.equal(huge.verdict, 'runtime-error', JSON.stringify(huge));
    assert.match(huge.stderr, /^error: .*table/im);
    await assertContained(t);
  });

  void it('a component with many memories: each is capped at the cap, not all together; filling them all is stopped by the cgroup (oom)', async () => {
    // The main module grows eight memories of its own to the cap and fills each; the command
    // adapter has one more. Wasmtime's store limit is per memory (a component may define up to
    // 16), so together they pass the cap: the runner's cgroup (the cap + 192 MiB) is what holds.
    const extra = Array.from({ length: 8 }, (_, i) => `(memory $m${i} 1)`).join(' ');
    const fill = Array.from(
      { length: 8 },
      (_, i) => `(loop $l${i} (br_if $l${i} (i32.ne (memory.grow $m${i} (i32.const 16)) (i32.const -1))))
    (memory.fill $m${i} (i32.const 0) (i32.const 1) (i32.mul (memory.size $m${i}) (i32.const 65536)))`,
    ).join('\n    ');
    const c = await component(await wat(watModule(`${fill}\n    (call $exit (i32.const 0))`, extra), ['multi-memory']));
    const r = await runWasm(c, { memory: '64m' });
    assert.equal(r.verdict, 'oom', JSON.stringify(r));
    await assertContained(t);
  });

  void it('endless loops with no calls end at the deadline: in _start, and in the start function run at instantiation', async () => {
    const inStart = await wat(watModule('(loop $l (br $l))'));
    const atLoad = await wat(watModule('', '(func $spin (loop $l (br $l))) (start $spin)'));
    const tableLoop = await wat(watModule('(loop $l (br_table $l $l (i32.const 0)))'));
    for (const m of [inStart, atLoad, tableLoop]) {
      const r = await runWasm(m, { timeout: '1s' });
      assert.equal(r.verdict, 'timeout', JSON.stringify(r));
    }
    await assertContained(t);
  });

  void it('fuel: an endless loop (in _start, at instantiation, or around host calls) ends fuel-exhausted', async () => {
    const inStart = await wat(watModule('(loop $l (br $l))'));
    const atLoad = await wat(watModule('', '(func $spin (loop $l (br $l))) (start $spin)'));
    // Every turn calls the host (an empty write): fuel is spent on the module's side of each call.
    const hostCalls = await wat(
      watModule('(loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8))) (br $l))'),
    );
    for (const m of [inStart, atLoad, hostCalls]) {
      const r = await runWasm(m, { fuel: 2_000_000, timeout: '30s' });
      assert.equal(r.verdict, 'fuel-exhausted', JSON.stringify(r));
      assert.match(r.stderr, /^wasm trap: .*fuel/m);
    }
    await assertContained(t);
  });

  void it('deep recursion is a clean trap (call stack exhausted), in a module and a component, never a runner crash', async () => {
    const plain = await wat(watModule('(call $down)', '(func $down (call $down))'));
    // Large frames: a thousand i64 locals a call, kept alive across it.
    const locals = Array.from({ length: 1000 }, () => 'i64').join(' ');
    const fat = await wat(
      watModule(
        '(call $down (i64.const 1))',
        `(func $down (param $x i64) (local ${locals}) (local.set 5 (local.get $x)) (call $down (i64.add (local.get 5) (i64.const 1))))`,
      ),
    );
    const indirect = await wat(
      watModule(
        '(call_indirect (type $v) (i32.const 0))',
        '(type $v (func)) (table 1 funcref) (elem (i32.const 0) $down) (func $down (call_indirect (type $v) (i32.const 0)))',
      ),
    );
    for (const m of [plain, fat, indirect, await component(plain)]) {
      const r = await runWasm(m);
      assert.equal(r.verdict, 'runtime-error', JSON.stringify(r));
      assert.equal(r.signal, null);
      assert.match(r.stderr, /^wasm trap: call stack exhausted/m);
      assert.doesNotMatch(r.stderr, /realm-wasm:|Traceback/);
    }
    await assertContained(t);
  });

  void it(
    'a compile bomb (200,000 small functions: 1.6 MB that take Cranelift ~1 GB and ~14 s) is bounded by the run: its cgroup, then its deadline',
    { timeout: 300_000 },
    async () => {
      const bomb = moduleOf(Array.from({ length: 200_000 }, (_, i) => smallBody(i)));
      // Compiling is the runner's work, in the run's sandbox: its cgroup (the cap + 192 MiB) stops it…
      const small = await runWasm(bomb, { memory: '16m', timeout: '60s' });
      assert.equal(small.verdict, 'oom', `${small.verdict}: ${small.stderr.slice(0, 300)}`);
      await assertContained(t);
      // …and with memory enough, its deadline does.
      const slow = await runWasm(bomb, { memory: '2g', timeout: '2s' });
      assert.equal(slow.verdict, 'timeout', `${slow.verdict}: ${slow.stderr.slice(0, 300)}`);
      await assertContained(t);
    },
  );

  void it('upload limits: a module past 12 MiB (16 MiB of base64) is 400, a body past 80 MiB 413, before anything runs', async () => {
    const post = async (bytes: Buffer) => {
      const res = await fetch(`${t.url}/v1/runs`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
        body: JSON.stringify({ language: 'wasm', files: [wasmFile(bytes)] }),
      });
      return { status: res.status, body: (await res.json()) as { error?: { code?: string; message?: string } } };
    };
    const file = await post(randomBytes(13 * MiB));
    assert.equal(file.status, 400);
    assert.equal(file.body.error?.code, 'INVALID_REQUEST');
    assert.match(file.body.error?.message ?? '', /content: Too big/);
    const body = await post(randomBytes(62 * MiB));
    assert.equal(body.status, 413);
    assert.match(body.body.error?.message ?? '', /larger than/);
    await assertContained(t);
  });

  void it('imports realm does not provide: a clear error naming the import, nothing runs', async () => {
    const cases: [string, string, RegExp][] = [
      ['env function', '(import "env" "system" (func (param i32) (result i32)))', /env.*system/s],
      ['env memory', '(import "env" "memory" (memory 1))', /env.*memory/s],
      [
        'preview 0',
        '(import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
        /wasi_unstable.*fd_write/s,
      ],
      ['a WASI function of another type', '(import "wasi_snapshot_preview1" "fd_close" (func (param i64)))', /fd_close/],
      [
        'a preview 2 interface in a core module',
        '(import "wasi:sockets/tcp@0.2.0" "[method]tcp-socket.start-connect" (func (param i32)))',
        /wasi:sockets/,
      ],
    ];
    for (const [what, imp, named] of cases) {
      const r = await runWasm(
        await wat(`(module ${imp} (memory (export "memory") 1) (func (export "_start") unreachable))`, ['multi-memory']),
      );
      assert.equal(r.verdict, 'runtime-error', `${what}: ${JSON.stringify(r)}`);
      assert.match(r.stderr, /^error: /m, what);
      assert.match(r.stderr, named, what);
      assert.doesNotMatch(r.stderr, /unreachable/, `${what}: it ran`);
    }
    // Pushed as a gateway app: 400 APP_INVALID, and nothing is deployed.
    const res = await fetch(`${t.url}/v1/apps`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
      body: JSON.stringify({
        name: 'needy',
        module: (await wat(`(module ${cases[0][1]} (memory (export "memory") 1) (func (export "_start")))`)).toString('base64'),
      }),
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error?: { code?: string } }).error?.code, 'APP_INVALID');
    const list = await fetch(`${t.url}/v1/apps`, { headers: { authorization: `Bearer ${t.token}` } });
    assert.deepEqual(((await list.json()) as { apps?: unknown[] }).apps ?? [], []);
    await assertContained(t);
  });
});
