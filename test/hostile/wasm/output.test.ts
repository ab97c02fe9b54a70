/**
 * Hostile WASI modules against the output limit and the daemon's memory: one fd_write of 64 MiB
 * (Wasmtime takes up to about that much in one call: 192 MiB fail with ENOMEM; it hands the runner
 * such a write in pieces, so the daemon never sees one frame that large), a hundred
 * thousand one-byte writes from each of four execs at once (a WASI call costs the runner tens of
 * microseconds, so millions would measure Wasmtime, not realm),
 * and a module printing forever. The limit holds, the daemon keeps answering, and its peak
 * resident set (VmHWM of this process, which hosts the daemon; reset through clear_refs before
 * each case) rises by a bounded amount only. (Runs once: see common.ts.)
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Sandbox, run } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, type TestDaemon } from '../../helpers/daemon.js';
import { wasmFile, wasmSkipReason, wat } from '../../helpers/wasm.js';
import { assertContained, assertHealthy } from '../common.js';
import { watModule } from './common.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile output tests: ${skip}`);

const MiB = 1024 ** 2;
/** How far the daemon's peak resident set may rise during a case. */
const BOUND_BYTES = 100 * MiB;

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  assert.ok(m, `no ${field}`);
  return Number(m[1]) * 1024;
}

/** Forget this process's peak so far: VmHWM restarts from its present resident set. */
function resetPeak(): number {
  writeFileSync('/proc/self/clear_refs', '5');
  return status('VmRSS');
}

/**
 * `bytes` bytes (from address 64) to stdout in as few fd_writes as WASI takes (one, unless it
 * writes less); an error ends it with exit code 100 + errno.
 */
function bigWrite(bytes: number): string {
  const pages = Math.ceil((bytes + 64) / 65536);
  return watModule(
    `(local $off i32) (local $left i32) (local $e i32)
    (local.set $off (i32.const 64)) (local.set $left (i32.const ${bytes}))
    (loop $l
      (i32.store (i32.const 0) (local.get $off)) (i32.store (i32.const 4) (local.get $left))
      (local.set $e (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (call $exit (i32.add (i32.const 100) (local.get $e)))))
      (local.set $off (i32.add (local.get $off) (i32.load (i32.const 8))))
      (local.set $left (i32.sub (local.get $left) (i32.load (i32.const 8))))
      (br_if $l (i32.gt_u (local.get $left) (i32.const 0))))`,
    '',
    `(memory (export "memory") ${pages})`,
  );
}

/** `n` writes of one byte ('x') each. */
function byteWrites(n: number): string {
  return watModule(
    `(local $i i32) (i32.store8 (i32.const 64) (i32.const 120))
    (i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 1))
    (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const ${n}))))`,
  );
}

void describe('hostile wasm modules: output floods', { skip }, () => {
  let t: TestDaemon;
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0 });
    // The first run's own costs (compiling realm's paths, the cache) are not a flood's.
    await run({ language: 'wasm', files: [wasmFile(await wat(byteWrites(10)))] }, t.client);
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('one fd_write of 64 MiB: cut at the output limit, the daemon never holds it whole', async (c) => {
    const module = await wat(bigWrite(64 * MiB));
    const before = resetPeak();
    const r = await run({ language: 'wasm', files: [wasmFile(module)], memory: '256m', output: '1m', timeout: '60s' }, t.client);
    const grew = status('VmHWM') - before;
    c.diagnostic(`resident set +${Math.round(grew / MiB)} MB at the peak`);
    assert.equal(r.verdict, 'output-limit', `${r.verdict}: ${r.stderr.slice(0, 300)}`);
    assert.ok(r.stdout.length <= MiB, `stdout ${r.stdout.length}`);
    assert.ok(grew < BOUND_BYTES, `the daemon's resident set rose by ${Math.round(grew / MiB)} MB for one 64 MiB write`);
    await assertContained(t);
  });

  void it('four execs writing 100,000 bytes one byte per fd_write: all of it arrives, the daemon stays bounded', async (c) => {
    const N = 100_000;
    const sb = await Sandbox.create({ driver: 'wasm', memory: '256m', cpus: 2 }, t.client);
    try {
      await sb.files.write('/home/user/flood.wasm', await wat(byteWrites(N)));
      const before = resetPeak();
      const results = await Promise.all([0, 1, 2, 3].map(() => sb.exec(['flood.wasm'], { timeout: '300s' })));
      const grew = status('VmHWM') - before;
      c.diagnostic(`resident set +${Math.round(grew / MiB)} MB at the peak; walls ${results.map((x) => x.wallMs).join(', ')} ms`);
      for (const r of results) {
        assert.equal(r.verdict, 'ok', r.stderr.slice(0, 300));
        assert.equal(r.stdout.length, N);
      }
      assert.ok(
        grew < BOUND_BYTES,
        `the daemon's resident set rose by ${Math.round(grew / MiB)} MB for ${(4 * N) / 1e6} MB of output in one-byte frames`,
      );
      await assertHealthy(t);
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it('a module printing forever ends output-limit, and its runner is gone', async () => {
    const forever = await wat(
      watModule(`(i32.store (i32.const 0) (i32.const 64)) (i32.store (i32.const 4) (i32.const 4096))
    (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))) (br $l))`),
    );
    const r = await run({ language: 'wasm', files: [wasmFile(forever)], output: '256k', timeout: '60s' }, t.client);
    assert.equal(r.verdict, 'output-limit');
    assert.equal(r.stdout.length, 256 * 1024);
    await assertContained(t);
  });
});
