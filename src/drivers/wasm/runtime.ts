/**
 * What the wasm runners need: Wasmtime (the official Python bindings from PyPI, whose wheel holds
 * the engine as a C library), and realm's two runners — realm-wasm (C, modules) and runner.py
 * (Python, components), with realm_wasmtime.py (its engine and store set-up; the gateway's
 * realm-wasm-http, C, sets up its own the same way). realm's set-up installs them under
 * /usr/local/lib/realm, which every sandbox of the `host` image sees (its read-only /usr), with no
 * mount: one-shot sandboxes keep realm's fast builder. The installed runners must be this realm's own (compared byte for byte).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { NATIVE_DIR, PACKAGE_ROOT } from '../../util/paths.js';
import { runCommand } from '../../util/run-command.js';

/** Where `scripts/setup.sh` installs the Wasmtime package and the runners. */
export const DEFAULT_WASMTIME_DIR = '/usr/local/lib/realm/wasmtime';
export const DEFAULT_RUNNER_DIR = '/usr/local/lib/realm/wasm-runner';
const PYTHON = '/usr/bin/python3';

export interface WasmRuntime {
  /** The directory holding the `wasmtime` Python package. */
  dir: string;
  /** Wasmtime's C library (inside the package). */
  lib: string;
  runner: string;
  runnerPy: string;
  version: string;
  /** What a compiled module depends on besides its bytes: Wasmtime's version and the runners. */
  engineKey: string;
}

/** Python modules runner.py imports, installed beside it. */
export const RUNNER_MODULES = ['realm_wasmtime.py'];

const SETUP = 'run `npm start` or scripts/setup.sh as root';

export function findRuntime(
  dir = process.env.REALM_WASMTIME_DIR ?? DEFAULT_WASMTIME_DIR,
  runnerDir = process.env.REALM_WASM_RUNNER_DIR ?? DEFAULT_RUNNER_DIR,
): WasmRuntime {
  const lib = join(dir, 'wasmtime', 'linux-x86_64', '_libwasmtime.so');
  if (!existsSync(lib)) throw new Error(`Wasmtime is not installed in ${dir}: ${SETUP} (pip install --target ${dir} wasmtime)`);
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: apt-get install python3`);
  const runner = join(runnerDir, 'realm-wasm');
  const runnerPy = join(runnerDir, 'runner.py');
  const hash = createHash('sha256');
  for (const [installed, own] of [
    [runner, join(NATIVE_DIR, 'realm-wasm')],
    [runnerPy, join(PACKAGE_ROOT, 'src', 'drivers', 'wasm', 'runner.py')],
    ...RUNNER_MODULES.map((f) => [join(runnerDir, f), join(PACKAGE_ROOT, 'src', 'drivers', 'wasm', f)] as const),
  ] as const) {
    const mine = readFileSync(own);
    if (!existsSync(installed) || !readFileSync(installed).equals(mine)) {
      throw new Error(`the wasm runner in ${runnerDir} is missing or not this realm's: ${SETUP}`);
    }
    hash.update(mine);
  }
  const info = readdirSync(dir).find((f) => /^wasmtime-[\d.]+\.dist-info$/.test(f));
  const version = info?.slice('wasmtime-'.length, -'.dist-info'.length) ?? 'unknown';
  return { dir, lib, runner, runnerPy, version, engineKey: `${version}-${hash.digest('hex').slice(0, 12)}` };
}

/** The runner's command line inside a sandbox. */
export function runnerArgv(rt: WasmRuntime): string[] {
  return [rt.runner, rt.lib, rt.dir, rt.runnerPy];
}

/** Whether the engine loads here (its wheel matches this machine); a problem in words, or none. */
export async function probeRuntime(rt: WasmRuntime): Promise<string | undefined> {
  const code = `import sys; sys.path.insert(0, ${JSON.stringify(rt.dir)}); import wasmtime; wasmtime.Engine()`;
  const r = await runCommand(PYTHON, ['-I', '-S', '-c', code], { timeoutMs: 20_000, env: {} });
  return r.code === 0
    ? undefined
    : `Wasmtime in ${rt.dir} does not load: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}`;
}
