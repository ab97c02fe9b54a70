/**
 * Hostile WASI modules against the wasm driver's environment boundary: a module sees only the
 * args and environment it was given (nothing of the daemon's), clocks and random numbers, and
 * its exit status passes through as WASI allows. (Runs once: see common.ts.)
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Sandbox, run } from '@realm/sdk';
import type { TestDaemon } from '../../helpers/daemon.js';
import { wasmFile, wasmSkipReason } from '../../helpers/wasm.js';
import { assertContained } from '../common.js';
import { lines } from './common.js';
import { filesFixture } from './files-fixture.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile environment tests: ${skip}`);

void describe('hostile wasm modules: args, environment, clocks, exit', { skip }, () => {
  let t: TestDaemon;
  let tool: Buffer;
  const { envMarker, runTool, noSecret } = filesFixture(skip, (f) => ({ t, tool } = f));

  void it('args and environment: only what was given; nothing of the daemon’s environment', async () => {
    const r = await run({ language: 'wasm', files: [wasmFile(tool)], args: ['env', 'given'], timeout: '30s' }, t.client);
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    assert.equal(got.argc, '3');
    assert.deepEqual([got['argv[0]'], got['argv[1]'], got['argv[2]']], ['main.wasm', 'env', 'given']);
    const env = r.stdout
      .split('\n')
      .filter((l) => l.startsWith('env '))
      .map((l) => l.slice(4, l.indexOf('=')));
    assert.ok(!env.includes(envMarker), `the daemon's environment reached the module: ${env.join(', ')}`);
    noSecret(r.stdout);
    // What a run gets is realm's fixed environment (no variable of the daemon's, e.g. its PATH).
    assert.ok(
      env.every((k) => ['HOME', 'PATH', 'LANG', 'USER', 'LOGNAME', 'SHELL'].includes(k)),
      env.join(', '),
    );
    // A sandbox exec's own env arrives, and nothing else of the request's.
    const sb = await Sandbox.create({ driver: 'wasm', env: { FROM_SANDBOX: 'a' } }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      const e = lines(await sb.exec(['main.wasm', 'env'], { env: { FROM_EXEC: 'b' } }));
      assert.equal(e['env FROM_SANDBOX=a'], 'set');
      assert.equal(e['env FROM_EXEC=b'], 'set');
      assert.equal(e.argc, '2');
    } finally {
      await sb.destroy();
    }
  });

  void it('clocks and random numbers work; exit codes pass through proc_exit', async () => {
    const r = await runTool(['clock']);
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    assert.ok(Math.abs(Number(got.realtime) - Date.now() / 1000) < 3600, `realtime ${got.realtime}`);
    assert.equal(got.monotonic, 'forward');
    assert.equal(got.random, 'differs');
    for (const code of [0, 1, 3, 42, 125]) {
      const x = await runTool(['exit', String(code)]);
      assert.equal(x.exitCode, code);
      assert.equal(x.verdict, code === 0 ? 'ok' : 'runtime-error');
    }
    // WASI's exit statuses stop at 125 (Wasmtime traps on more): never a success, whatever its low byte.
    for (const code of [126, 255, 256, -1]) {
      const x = await runTool(['exit', String(code)]);
      assert.equal(x.verdict, 'runtime-error', `exit(${code}): ${JSON.stringify(x)}`);
      assert.equal(x.exitCode, 1);
      assert.match(x.stderr, /^error: exit with invalid exit status outside of \[0\.\.126\)$/m);
    }
    await assertContained(t);
  });
});
