/**
 * Wasmtime as the wasm runner uses it: the official Python bindings (PyPI `wasmtime`, the engine
 * inside the wheel), installed by realm's set-up under /usr/local/lib/realm (the `host` image's
 * read-only /usr shows it in every sandbox), and run by Debian's /usr/bin/python3.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../util/paths.js';
import { runCommand } from '../../util/run-command.js';

/** Where `scripts/setup.sh` installs the Wasmtime package. */
export const DEFAULT_WASMTIME_DIR = '/usr/local/lib/realm/wasmtime';
const PYTHON = '/usr/bin/python3';

export interface WasmRuntime {
  /** The directory holding the `wasmtime` package (put on the runner's sys.path). */
  dir: string;
  version: string;
  /** What a compiled module depends on besides its bytes: Wasmtime's version and the runner's settings. */
  engineKey: string;
  /** The runner's source, passed with `python3 -c`. */
  source: string;
}

export async function findRuntime(dir = process.env.REALM_WASMTIME_DIR ?? DEFAULT_WASMTIME_DIR): Promise<WasmRuntime> {
  if (!existsSync(join(dir, 'wasmtime', '__init__.py'))) {
    throw new Error(
      `Wasmtime is not installed in ${dir}: run \`npm start\` or scripts/setup.sh (pip install --target ${dir} wasmtime)`,
    );
  }
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: apt-get install python3`);
  const info = readdirSync(dir).find((f) => /^wasmtime-[\d.]+\.dist-info$/.test(f));
  const version = info?.slice('wasmtime-'.length, -'.dist-info'.length) ?? 'unknown';
  const source = readFileSync(join(PACKAGE_ROOT, 'src', 'drivers', 'wasm', 'runner.py'), 'utf8');
  const { createHash } = await import('node:crypto');
  const settings = createHash('sha256').update(source).digest('hex').slice(0, 12);
  return { dir, version, engineKey: `${version}-${settings}`, source };
}

/** The runner's command line inside a sandbox. */
export function runnerArgv(rt: WasmRuntime): string[] {
  return [PYTHON, '-I', '-S', '-c', rt.source, rt.dir];
}

/** Whether the engine loads here (its wheel matches this machine); a problem in words, or none. */
export async function probeRuntime(rt: WasmRuntime): Promise<string | undefined> {
  const r = await runCommand(
    PYTHON,
    ['-I', '-S', '-c', `import sys; sys.path.insert(0, ${JSON.stringify(rt.dir)}); import wasmtime; wasmtime.Engine()`],
    {
      timeoutMs: 20_000,
      env: {},
    },
  );
  return r.code === 0
    ? undefined
    : `Wasmtime in ${rt.dir} does not load: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 300)}`;
}
