/**
 * The conformance suite's per-driver program table: one small tool per kind of driver, with the
 * same modes, so a case is written once and runs on every driver. Native drivers run a Python
 * script (any image with python3); the wasm driver, which runs WebAssembly modules only (its
 * `nativePrograms` capability is false), runs the same modes as a C module built here with clang
 * --target=wasm32-wasi.
 *
 * Modes: `outerr` (out on stdout, err on stderr, exit 7) · `catenv` (stdin to stdout, then
 * $FROM_SANDBOX$FROM_EXEC and a newline) · `cat FILE` · `args A…` (one a line) · `exit N` ·
 * `flood` (prints forever) · `spin` (loops forever, silent) · `alloc MIB` (allocates and touches
 * MIB MiB, then prints `fits`; in wasm a failed allocation exits 3 with `no memory` on stderr).
 */
import type { Sandbox } from '@realm/sdk';
import type { DriverName } from '../../src/drivers/driver.js';
import { cWasm } from '../helpers/wasm.js';

const PY_TOOL = `import os, sys
mode, args = sys.argv[1], sys.argv[2:]
if mode == 'outerr':
    print('out'); print('err', file=sys.stderr); sys.exit(7)
elif mode == 'catenv':
    sys.stdout.write(sys.stdin.read())
    print(os.environ.get('FROM_SANDBOX', '') + os.environ.get('FROM_EXEC', ''))
elif mode == 'cat':
    sys.stdout.write(open(args[0]).read())
elif mode == 'args':
    for a in args: print(a)
elif mode == 'exit':
    sys.exit(int(args[0]))
elif mode == 'flood':
    while True: sys.stdout.write('y' * 1024)
elif mode == 'spin':
    while True: pass
elif mode == 'alloc':
    x = bytearray(int(args[0]) * 1024 * 1024); print('fits')
`;

const C_TOOL = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
volatile unsigned long spins;
int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "outerr")) { puts("out"); fputs("err\n", stderr); return 7; }
  if (!strcmp(mode, "catenv")) {
    int c;
    while ((c = getchar()) != EOF) putchar(c);
    const char *a = getenv("FROM_SANDBOX"), *b = getenv("FROM_EXEC");
    printf("%s%s\n", a ? a : "", b ? b : "");
    return 0;
  }
  if (!strcmp(mode, "cat")) {
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 2; }
    int c;
    while ((c = fgetc(f)) != EOF) putchar(c);
    return 0;
  }
  if (!strcmp(mode, "args")) { for (int i = 2; i < argc; i++) puts(argv[i]); return 0; }
  if (!strcmp(mode, "exit")) return atoi(argv[2]);
  if (!strcmp(mode, "flood")) for (;;) fputs("yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n", stdout);
  if (!strcmp(mode, "spin")) for (;;) spins++;
  if (!strcmp(mode, "alloc")) {
    size_t n = strtoul(argv[2], 0, 10) << 20;
    char *p = malloc(n);
    if (!p) { fputs("no memory\n", stderr); return 3; }
    memset(p, 1, n);
    printf("fits\n");
    return p[n - 1] == 1 ? 0 : 1;
  }
  return 64;
}
`;

export interface Programs {
  /** Put the tool into a fresh sandbox's home. */
  install(sb: Sandbox): Promise<void>;
  /** An exec's argv: the tool in `mode` with `args`. */
  argv(mode: string, ...args: string[]): string[];
  /** A one-shot run of the tool (its args follow). */
  run: { language: string; files: { name: string; content: string; encoding?: 'base64' }[] };
  /** How a program past its memory limit ends: killed (oom), or, in wasm, its allocation fails (exit 3). */
  overMemory: 'oom' | 'runtime-error';
}

let wasmTool: Promise<Buffer> | undefined;

/** The program table for `driver`. */
export async function programsFor(driver: DriverName): Promise<Programs> {
  if (driver !== 'wasm') {
    return {
      install: (sb) => sb.files.write('/home/user/tool.py', PY_TOOL),
      argv: (mode, ...args) => ['/usr/bin/python3', '/home/user/tool.py', mode, ...args],
      run: { language: 'python', files: [{ name: 'main.py', content: PY_TOOL }] },
      overMemory: 'oom',
    };
  }
  const tool = await (wasmTool ??= cWasm(C_TOOL));
  return {
    install: (sb) => sb.files.write('/home/user/tool.wasm', tool),
    argv: (mode, ...args) => ['tool.wasm', mode, ...args],
    run: { language: 'wasm', files: [{ name: 'main.wasm', content: tool.toString('base64'), encoding: 'base64' }] },
    overMemory: 'runtime-error',
  };
}
