/**
 * The daemon takes the installed wasm runners only when they are this realm's own, byte for byte:
 * realm-wasm, runner.py, and the module runner.py shares with the gateway's runner
 * (realm_wasmtime.py). Skipped (saying why) where Wasmtime is not installed.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { DEFAULT_WASMTIME_DIR, RUNNER_MODULES, findRuntime } from '../../src/drivers/wasm/runtime.js';
import { NATIVE_DIR, PACKAGE_ROOT } from '../../src/util/paths.js';

const wasmtimeDir = process.env.REALM_WASMTIME_DIR ?? DEFAULT_WASMTIME_DIR;
const skip = !existsSync(join(wasmtimeDir, 'wasmtime', 'linux-x86_64', '_libwasmtime.so'))
  ? `Wasmtime is not installed in ${wasmtimeDir}`
  : !existsSync(join(NATIVE_DIR, 'realm-wasm'))
    ? 'realm-wasm is not built (scripts/build.sh)'
    : false;

void describe('wasm runner check', { skip }, () => {
  void it('refuses a runner directory missing the shared module, or holding another copy of it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-runner-'));
    try {
      copyFileSync(join(NATIVE_DIR, 'realm-wasm'), join(dir, 'realm-wasm'));
      copyFileSync(join(PACKAGE_ROOT, 'src', 'drivers', 'wasm', 'runner.py'), join(dir, 'runner.py'));
      assert.throws(() => findRuntime(wasmtimeDir, dir), /missing or not this realm's/);
      for (const f of RUNNER_MODULES) copyFileSync(join(PACKAGE_ROOT, 'src', 'drivers', 'wasm', f), join(dir, f));
      const rt = findRuntime(wasmtimeDir, dir);
      assert.equal(rt.runnerPy, join(dir, 'runner.py'));
      writeFileSync(join(dir, 'realm_wasmtime.py'), '# not the one this realm ships\n');
      assert.throws(() => findRuntime(wasmtimeDir, dir), /missing or not this realm's/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
