/**
 * Shared pieces of the wasm driver's hostile suites (test/hostile/wasm/). The wasm driver's
 * outcome does not depend on REALM_TEST_DRIVER (its runners always live in `namespace` sandboxes),
 * so these files sit in a subfolder: scripts/test.sh runs them once, in its first pass, and not
 * again per driver.
 *
 * Hostile C modules start with a guard: a module that can open the host's /var/lib or the daemon's
 * data dir is not inside realm's preopens, and refuses to act (prints GUARD, exits 99). WAT modules
 * import nothing but fd_write and proc_exit: they can burn cpu and memory, nothing else.
 */
import assert from 'node:assert/strict';
import type { ExecResult } from '@realm/sdk';

/** A C guard for WASI modules: call `guard()` first thing in `main`. */
export function wasiGuard(dataDir: string): string {
  return `#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
static void guard(void) {
  if (access("/var/lib", F_OK) == 0 || access("/root", F_OK) == 0 || access(${JSON.stringify(dataDir)}, F_OK) == 0) {
    puts("GUARD");
    fflush(stdout);
    exit(99);
  }
}
`;
}

export function assertNoWasiGuard(r: ExecResult): void {
  assert.ok(
    !r.stdout.includes('GUARD') && r.exitCode !== 99,
    `the guard tripped: the module saw the host\n${r.stdout.slice(0, 500)}`,
  );
}

/** `(lines)` of `key: value` a module printed, as a record (later lines win). */
export function lines(r: ExecResult): Record<string, string> {
  assertNoWasiGuard(r);
  const out: Record<string, string> = {};
  for (const l of r.stdout.split('\n')) {
    const i = l.lastIndexOf(': ');
    if (i > 0) out[l.slice(0, i)] = l.slice(i + 2);
  }
  return out;
}

/**
 * A WAT module printing `text` with fd_write, after `body` (instructions of `_start`), with
 * `extra` module fields. Exit codes go through proc_exit.
 */
export function watModule(body: string, extra = '', memory = '(memory (export "memory") 1)'): string {
  return `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  ${memory}
  ${extra}
  (func (export "_start") ${body}))`;
}
