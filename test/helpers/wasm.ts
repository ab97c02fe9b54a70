/**
 * WebAssembly test modules, built from source in the test (no binary blobs): WAT with wabt's
 * `wat2wasm`, C with `clang --target=wasm32-wasi -O2` (Debian's clang, lld and wasi-libc). And
 * why the wasm driver cannot be tested here, asked of the same checks its fingerprint makes.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { componentEmbed, componentNew, preview1AdapterCommandPath } from '@bytecodealliance/jco';
import { findRuntime, probeRuntime } from '../../src/drivers/wasm/runtime.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { namespaceSkipReason } from './daemon.js';

const run = promisify(execFile);

/** Build a module from `source` with `tool` (given the source's path and the output's), in a temp dir removed after. */
async function build(ext: string, source: string, argv: (src: string, out: string) => [string, string[]]): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-wasm-'));
  try {
    const src = join(dir, `m.${ext}`);
    const out = join(dir, 'm.wasm');
    writeFileSync(src, source);
    const [cmd, args] = argv(src, out);
    // Without blocking the event loop: the daemon under test lives in this process.
    await run(cmd, args, { timeout: 120_000 });
    return readFileSync(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A module from WebAssembly text; `features` are wat2wasm's (e.g. `multi-memory`). */
export function wat(source: string, features: string[] = []): Promise<Buffer> {
  return build('wat', source, (src, out) => ['wat2wasm', [...features.map((f) => `--enable-${f}`), src, '-o', out]]);
}

/**
 * A WASI preview 2 command component: a preview 1 module wrapped with the WASI command adapter
 * (`jco new --wasi-command`: wasm-tools' component new, from the npm package @bytecodealliance/jco).
 */
export async function component(module: Buffer): Promise<Buffer> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-wasm-'));
  try {
    writeFileSync(join(dir, 'm.wasm'), module);
    const jco = join(PACKAGE_ROOT, 'node_modules', '.bin', 'jco');
    await run(jco, ['new', join(dir, 'm.wasm'), '--wasi-command', '-o', join(dir, 'c.wasm')], { timeout: 120_000 });
    return readFileSync(join(dir, 'c.wasm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A WASI command module from C. */
export function cWasm(source: string): Promise<Buffer> {
  return build('c', source, (src, out) => ['clang', ['--target=wasm32-wasi', '-O2', '-o', out, src]]);
}

/** A module as a run's file (base64). */
export function wasmFile(bytes: Buffer, name = 'main.wasm'): { name: string; content: string; encoding: 'base64' } {
  return { name, content: bytes.toString('base64'), encoding: 'base64' };
}

let skip: Promise<string | undefined> | undefined;

/**
 * Why the wasm driver's tests cannot run here (printed as the skip reason), or undefined: its host
 * driver (namespace) cannot sandbox, Wasmtime is not installed or does not load (the driver's own
 * fingerprint checks), or the tools that build the test modules are missing.
 */
export function wasmSkipReason(): Promise<string | undefined> {
  skip ??= (async () => {
    const ns = await namespaceSkipReason();
    if (ns) return ns;
    let rt;
    try {
      rt = findRuntime();
    } catch (e) {
      return `wasm driver unavailable: ${e instanceof Error ? e.message : String(e)}`;
    }
    const problem = await probeRuntime(rt);
    if (problem) return `wasm driver unavailable: ${problem}`;
    try {
      await wat('(module)');
    } catch (e) {
      return `wat2wasm (Debian wabt) cannot build test modules: ${e instanceof Error ? e.message : String(e)}`;
    }
    try {
      await cWasm('int main(void) { return 0; }\n');
    } catch (e) {
      return `clang --target=wasm32-wasi (Debian clang, lld, wasi-libc, libclang-rt-14-dev-wasm32) cannot build test modules: ${e instanceof Error ? e.message : String(e)}`;
    }
    return undefined;
  })();
  return skip;
}

/** jco's bundled WIT of WASI 0.2.12 (the version of its command adapter). */
const WASI_WIT = join(PACKAGE_ROOT, 'node_modules', '@bytecodealliance', 'jco', 'lib', 'wit', 'builtin', '0.2.12');

/**
 * A preview 2 command component whose core module also calls preview 2 interfaces directly (such
 * as wasi:sockets, which preview 1 has no calls for): the imports `world` (WIT) declares, over
 * jco's bundled WASI packages named in `packages` (e.g. `wasi-sockets`), are embedded in the module
 * (wasm-tools' component embed), which is then wrapped with the command adapter as `component()` does.
 */
export async function componentImporting(module: Buffer, world: string, packages: string[]): Promise<Buffer> {
  // One WIT source: the world's package, then each WASI package nested (`package x { … }`).
  const nested = packages.map((p) =>
    readFileSync(join(WASI_WIT, p, 'package.wit'), 'utf8')
      .replace(/^package ([^;]+);/m, 'package $1 {')
      .concat('\n}\n'),
  );
  const worldName = /\bworld\s+([a-z][a-z0-9-]*)/.exec(world)?.[1];
  const embedded = await componentEmbed({ binary: module, witSource: [world, ...nested].join('\n'), world: worldName });
  const adapter = readFileSync(preview1AdapterCommandPath());
  return Buffer.from(await componentNew(embedded, [['wasi_snapshot_preview1', adapter]]));
}
