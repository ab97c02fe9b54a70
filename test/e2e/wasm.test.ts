/**
 * The wasm driver's limits, each proven with a real module built from source here (WAT with
 * wat2wasm, C with clang --target=wasm32-wasi): the memory cap, fuel, the deadline, traps, load
 * errors, WASI's preopens as the only files a module sees, read-only volumes, c-wasm compiled on
 * the node, the compiled-module cache, and which languages the driver takes. Skipped (saying why)
 * when the node cannot offer the wasm driver.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox, nodeInfo, run } from '@realm/sdk';
import { leftovers, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { cWasm, component, wasmFile, wasmSkipReason, wat } from '../helpers/wasm.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping wasm driver tests: ${skip}`);

const MiB = 1024 ** 2;

/** One C program, its behaviour chosen by argv[1]: fewer modules to build and send. */
const TOOL_C = String.raw`
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Where malloc's pointers go: a volatile global, so clang cannot drop the allocations. */
void *volatile kept[4096];
volatile unsigned long spins;

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "echo")) {
    printf("args:");
    for (int i = 2; i < argc; i++) printf(" %s", argv[i]);
    printf("\nHOME=%s\n", getenv("HOME") ? getenv("HOME") : "(unset)");
    char line[256];
    while (fgets(line, sizeof line, stdin)) printf("stdin: %s", line);
    return 0;
  }
  if (!strcmp(mode, "exit")) {
    fprintf(stderr, "leaving with %d\n", atoi(argv[2]));
    exit(atoi(argv[2]));
  }
  if (!strcmp(mode, "forever")) {
    for (;;) puts("again and again and again");
  }
  if (!strcmp(mode, "malloc")) {
    int n = 0;
    while (n < 4096) {
      void *p = malloc(1 << 20);
      if (!p) break;
      memset(p, 1, 1 << 20);
      kept[n++] = p;
    }
    printf("allocated %d MiB, then malloc failed\n", n);
    return 0;
  }
  if (!strcmp(mode, "spin")) {
    unsigned long limit = strtoul(argv[2], 0, 10);
    while (limit == 0 || spins < limit) spins++;
    printf("spun %lu\n", spins);
    return 0;
  }
  if (!strcmp(mode, "open")) {
    /* Each path: whether it opens for reading (a file) or as a directory. */
    for (int i = 2; i < argc; i++) {
      FILE *f = fopen(argv[i], "r");
      DIR *d = f ? 0 : opendir(argv[i]);
      printf("%s: %s\n", argv[i], f || d ? "opened" : "refused");
      if (f) fclose(f);
      if (d) closedir(d);
    }
    return 0;
  }
  if (!strcmp(mode, "ls")) {
    DIR *d = opendir(argv[2]);
    if (!d) { perror(argv[2]); return 2; }
    struct dirent *e;
    while ((e = readdir(d))) printf("%s\n", e->d_name);
    closedir(d);
    return 0;
  }
  if (!strcmp(mode, "cat")) {
    FILE *f = fopen(argv[2], "r");
    if (!f) { perror(argv[2]); return 2; }
    char buf[256];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, stdout);
    fclose(f);
    return 0;
  }
  if (!strcmp(mode, "copy")) {
    /* stdin to stdout, in the chunks they come in */
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, stdin)) > 0) fwrite(buf, 1, n, stdout);
    return 0;
  }
  if (!strcmp(mode, "write")) {
    FILE *f = fopen(argv[2], "w");
    if (!f || fputs(argv[3], f) < 0 || fclose(f) != 0) { perror(argv[2]); return 3; }
    printf("wrote %s\n", argv[2]);
    return 0;
  }
  fprintf(stderr, "unknown mode %s\n", mode);
  return 64;
}
`;

/** Print "hello from wat" with WASI's fd_write. */
const HELLO_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from wat\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 15))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;

void describe('wasm driver', { skip }, () => {
  let t: TestDaemon;
  let closed = false;
  let tool: Buffer;
  before(async () => {
    if (skip) return;
    tool = await cWasm(TOOL_C);
    t = await startTestDaemon({ warm: 0 });
  });
  after(async () => {
    if (!t) return;
    if (!closed) await t.close();
    removeTestDirs(t);
  });

  /** A one-shot run of the tool module. */
  const runTool = (args: string[], opts: Partial<Parameters<typeof run>[0]> = {}) =>
    run({ language: 'wasm', files: [wasmFile(tool)], args, timeout: '30s', ...opts }, t.client);

  /** POST a body as it is (for requests the SDK's types would not let through). */
  const post = async (path: string, body: unknown) => {
    const res = await fetch(t.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { error?: { code: string; message: string } } };
  };

  void it('the node offers the wasm driver, with Wasmtime as its engine', async () => {
    const wasm = (await nodeInfo(t.client)).drivers.find((d) => d.name === 'wasm');
    assert.ok(wasm, 'GET /v1/node lists the wasm driver');
    assert.equal(wasm.available, true, wasm.reason);
    assert.match(String(wasm.details.engine), /^wasmtime \d+\./);
  });

  void it('a C module prints its args, env and stdin (ok); exit(7) is exit code 7, runtime-error', async () => {
    const ok = await runTool(['echo', 'a', 'b c'], { stdin: 'one\ntwo\n' });
    assert.equal(ok.verdict, 'ok', ok.stderr);
    assert.equal(ok.exitCode, 0);
    assert.equal(ok.stdout, 'args: a b c\nHOME=/home/user\nstdin: one\nstdin: two\n');
    const seven = await runTool(['exit', '7']);
    assert.equal(seven.verdict, 'runtime-error');
    assert.equal(seven.exitCode, 7);
    assert.equal(seven.stderr, 'leaving with 7\n');
  });

  void it('stdin larger than a pipe holds streams into the runner (started ahead) while its output streams out', async () => {
    // 4 MiB each way: the runner's stdin pipe and its output pipe both fill many times over, so
    // PID 1 must feed the one while it relays the other.
    const line = 'the quick brown fox jumps over the lazy dog, 0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ\n';
    const input = line.repeat(Math.ceil((4 * MiB) / line.length));
    const r = await runTool(['copy'], { stdin: input, output: '16m' });
    assert.equal(r.verdict, 'ok', r.stderr);
    assert.equal(r.stdout.length, input.length);
    assert.equal(
      createHash('sha256').update(r.stdout).digest('hex'),
      createHash('sha256').update(input).digest('hex'),
      'the output is the input, byte for byte',
    );
    // A module that ends without reading its stdin: the rest of it is dropped, the run ends.
    const early = await runTool(['exit', '3'], { stdin: input });
    assert.equal(early.verdict, 'runtime-error', early.stderr);
    assert.equal(early.exitCode, 3);
  });

  void it('a module printing forever ends with output-limit', { timeout: 60_000 }, async () => {
    const r = await runTool(['forever'], { output: '64k' });
    assert.equal(r.verdict, 'output-limit');
    assert.ok(r.stdout.length <= 64 * 1024 && r.stdout.startsWith('again and again'), r.stdout.slice(0, 100));
  });

  void it('memory: malloc fails below the 32 MiB cap, and the memory reported stays under it', async () => {
    const r = await runTool(['malloc'], { memory: '32m' });
    assert.equal(r.verdict, 'ok', r.stderr);
    const mib = Number(/^allocated (\d+) MiB, then malloc failed\n$/.exec(r.stdout)?.[1]);
    assert.ok(mib >= 16 && mib < 32, r.stdout);
    assert.ok(r.memoryBytes > mib * MiB && r.memoryBytes <= 32 * MiB, `memoryBytes ${r.memoryBytes}`);
    // The same program under a larger cap gets further: the cap is what stopped it.
    const more = await runTool(['malloc'], { memory: '128m' });
    const moreMib = Number(/^allocated (\d+) MiB/.exec(more.stdout)?.[1]);
    assert.ok(moreMib > 32 && moreMib < 128, more.stdout);
  });

  void it('a runner that ends right after its job (fuel 1, the module compiled before) is reported, every time', async () => {
    // Its sandbox's end comes while the daemon may still be sending the end of the run's stdin:
    // that write must not cost the report of the end (it once did: an empty ok, 1 run in 6).
    // Runs from a warm pool, whose runners are started ahead and end at once.
    const warm = await startTestDaemon({ warm: 1 });
    try {
      for (let i = 0; i < 16; i++) {
        const r = await run({ language: 'wasm', files: [wasmFile(tool)], args: ['echo'], fuel: 1 }, warm.client);
        assert.equal(r.verdict, 'fuel-exhausted', `run ${i}: ${r.verdict} ${r.stderr}`);
      }
    } finally {
      await warm.close();
      removeTestDirs(warm);
    }
  });

  void it('memory: a module declaring 64 MiB is refused at load under a 32 MiB cap', async () => {
    const big = await wat('(module (memory (export "memory") 1024) (func (export "_start")))');
    const refused = await run({ language: 'wasm', files: [wasmFile(big)], memory: '32m' }, t.client);
    assert.equal(refused.verdict, 'runtime-error');
    assert.notEqual(refused.exitCode, 0);
    assert.match(refused.stderr, /^error: .*memory/im);
    assert.equal(refused.stdout, '');
    // Under 128 MiB the same module loads and runs.
    const fits = await run({ language: 'wasm', files: [wasmFile(big)], memory: '128m' }, t.client);
    assert.equal(fits.verdict, 'ok', fits.stderr);
    assert.equal(fits.memoryBytes, 64 * MiB);
  });

  void it('fuel: an endless loop with 1000000 fuel ends fuel-exhausted; a short one within it is ok', async () => {
    const r = await runTool(['spin', '0'], { fuel: 1_000_000 });
    assert.equal(r.verdict, 'fuel-exhausted', `${r.verdict}: ${r.stderr}`);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /wasm trap: .*fuel/i);
    const short = await runTool(['spin', '1000'], { fuel: 1_000_000 });
    assert.equal(short.verdict, 'ok', short.stderr);
    assert.equal(short.stdout, 'spun 1000\n');
  });

  void it(
    'deadline: a loop with no calls under timeout 1s ends with timeout, and the run returns',
    { timeout: 60_000 },
    async () => {
      const loop = await wat('(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))');
      const r = await run({ language: 'wasm', files: [wasmFile(loop)], timeout: '1s' }, t.client);
      assert.equal(r.verdict, 'timeout');
      assert.ok(r.wallMs < 60_000, `wallMs ${r.wallMs}`);
      // The instance really stopped: no runner of it is left.
      assert.deepEqual(await leftovers(t), []);
    },
  );

  void it('a preview 2 command component (a C module wrapped by the WASI adapter) runs, with fuel and traps', async () => {
    const c = await component(tool);
    assert.deepEqual([...c.subarray(4, 8)], [0x0d, 0x00, 0x01, 0x00], 'a component, not a core module');
    const runC = (args: string[], opts: Partial<Parameters<typeof run>[0]> = {}) =>
      run({ language: 'wasm', files: [wasmFile(c)], args, timeout: '30s', ...opts }, t.client);
    const ok = await runC(['echo', 'x'], { stdin: 'in\n' });
    assert.equal(ok.verdict, 'ok', ok.stderr);
    assert.equal(ok.stdout, 'args: x\nHOME=/home/user\nstdin: in\n');
    // Preview 2's exit says only success or failure.
    const failed = await runC(['exit', '7']);
    assert.equal(failed.verdict, 'runtime-error');
    assert.equal(failed.exitCode, 1);
    const fuel = await runC(['spin', '0'], { fuel: 1_000_000 });
    assert.equal(fuel.verdict, 'fuel-exhausted', fuel.stderr);
    const small = await runC(['malloc'], { memory: '32m' });
    assert.match(small.stdout + small.stderr, /malloc failed|wasm trap|assertion failed/);
    assert.notEqual(small.verdict, 'ok');
  });

  void it('a trap (unreachable) is a runtime-error with "wasm trap:" on stderr', async () => {
    const trap = await wat('(module (memory (export "memory") 1) (func (export "_start") unreachable))');
    const r = await run({ language: 'wasm', files: [wasmFile(trap)] }, t.client);
    assert.equal(r.verdict, 'runtime-error');
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /^wasm trap: .*unreachable/m);
  });

  void it('a file that is not wasm, and a module importing what realm does not provide, say so', async () => {
    const text = await run(
      {
        language: 'wasm',
        files: [{ name: 'main.wasm', content: Buffer.from('print("hi")\n').toString('base64'), encoding: 'base64' }],
      },
      t.client,
    );
    assert.equal(text.verdict, 'runtime-error');
    assert.match(text.stderr, /^error: .*is not a WebAssembly module or component/m);
    const needy = await wat('(module (import "env" "nope" (func)) (memory (export "memory") 1) (func (export "_start")))');
    const r = await run({ language: 'wasm', files: [wasmFile(needy)] }, t.client);
    assert.equal(r.verdict, 'runtime-error');
    assert.match(r.stderr, /^error: .*env.*nope/ms);
  });

  void it('isolation: a module opens only its preopened working directory', async () => {
    const r = await runTool([
      'open',
      '/etc/passwd',
      '/proc/self/environ',
      '..',
      '../../etc/passwd',
      '/home/user/../../etc/passwd',
      '/etc',
      '/usr/bin',
      '/tmp',
      'main.wasm',
      '/home/user/main.wasm',
      '.',
    ]);
    assert.equal(r.verdict, 'ok', r.stderr);
    assert.equal(
      r.stdout,
      [
        '/etc/passwd: refused',
        '/proc/self/environ: refused',
        '..: refused',
        '../../etc/passwd: refused',
        '/home/user/../../etc/passwd: refused',
        '/etc: refused',
        '/usr/bin: refused',
        '/tmp: refused',
        'main.wasm: opened',
        '/home/user/main.wasm: opened',
        '.: opened',
        '',
      ].join('\n'),
    );
    // "/" is no way out: WASI has no root but the preopens, and wasi-libc resolves it to the working directory.
    const root = await runTool(['ls', '/']);
    assert.equal(root.verdict, 'ok', root.stderr);
    assert.deepEqual(root.stdout.split('\n').filter(Boolean).sort(), ['.', '..', 'main.wasm']);
  });

  void it('a wasm sandbox: a read-only volume reads but refuses writes; another sandbox sees none of its files', async () => {
    // The volume's content, written through a sandbox that mounts it read-write.
    const writer = await Sandbox.create({ volumes: [{ volume: 'wasm-ro', path: '/data' }] }, t.client);
    await writer.files.write('/data/hello.txt', 'from the volume\n');
    await writer.destroy();

    const sb = await Sandbox.create(
      { driver: 'wasm', volumes: [{ volume: 'wasm-ro', path: '/data', readOnly: true }] },
      t.client,
    );
    const other = await Sandbox.create({ driver: 'wasm' }, t.client);
    try {
      assert.equal(sb.info.driver, 'wasm');
      await sb.files.write('/home/user/main.wasm', tool);
      const read = await sb.exec(['main.wasm', 'cat', '/data/hello.txt']);
      assert.equal(read.verdict, 'ok', read.stderr);
      assert.equal(read.stdout, 'from the volume\n');
      const denied = await sb.exec(['main.wasm', 'write', '/data/new.txt', 'x']);
      assert.equal(denied.verdict, 'runtime-error', denied.stdout);
      assert.equal(denied.exitCode, 3);
      assert.match(denied.stderr, /^\/data\/new\.txt: /);
      await assert.rejects(sb.files.stat('/data/new.txt'));
      // The working directory is writable, by relative and absolute path; a string command is split on spaces.
      const wrote = await sb.exec('main.wasm write /home/user/out.txt secret');
      assert.equal(wrote.verdict, 'ok', wrote.stderr);
      assert.equal(await sb.files.readText('/home/user/out.txt'), 'secret');
      // Fuel holds in a sandbox's exec too.
      const spun = await sb.exec(['main.wasm', 'spin', '0'], { fuel: 1_000_000 });
      assert.equal(spun.verdict, 'fuel-exhausted');

      await other.files.write('/home/user/main.wasm', tool);
      const look = await other.exec(['main.wasm', 'open', '/home/user/out.txt', 'out.txt', '/data/hello.txt', 'main.wasm']);
      assert.equal(look.verdict, 'ok', look.stderr);
      assert.equal(look.stdout, '/home/user/out.txt: refused\nout.txt: refused\n/data/hello.txt: refused\nmain.wasm: opened\n');
    } finally {
      await sb.destroy();
      await other.destroy();
    }
  });

  void it(
    'c-wasm: C source compiles on the node and runs as a module; a syntax error is compile-error',
    { timeout: 120_000 },
    async () => {
      const ok = await run(
        {
          language: 'c-wasm',
          code: '#include <stdio.h>\nint main(int argc, char **argv) { printf("%d args, wasm says %s\\n", argc - 1, argv[1]); return 0; }\n',
          args: ['hi'],
          compileTimeout: '90s',
        },
        t.client,
      );
      assert.equal(ok.verdict, 'ok', `${ok.stderr}${ok.compile?.stderr ?? ''}`);
      assert.equal(ok.stdout, '1 args, wasm says hi\n');
      assert.equal(ok.compile?.verdict, 'ok');
      const bad = await run({ language: 'c-wasm', code: 'int main(void) { return 0 }\n', compileTimeout: '90s' }, t.client);
      assert.equal(bad.verdict, 'compile-error');
      assert.match(bad.compile?.stderr ?? '', /error:/);
    },
  );

  void it('the compiled-module cache: two runs of one module both succeed, from one cache entry', async () => {
    const hello = await wat(HELLO_WAT);
    const sha = createHash('sha256').update(hello).digest('hex');
    const cacheDir = join(t.dataDir, 'wasm-cache');
    const entries = (): string[] => (existsSync(cacheDir) ? readdirSync(cacheDir).filter((f) => f.startsWith(sha)) : []);
    assert.deepEqual(entries(), []);
    const first = await run({ language: 'wasm', files: [wasmFile(hello)] }, t.client);
    assert.equal(first.verdict, 'ok', first.stderr);
    assert.equal(first.stdout, 'hello from wat\n');
    assert.equal(entries().length, 1, 'the first run compiled and cached it');
    const second = await run({ language: 'wasm', files: [wasmFile(hello)] }, t.client);
    assert.equal(second.verdict, 'ok', second.stderr);
    assert.equal(second.stdout, 'hello from wat\n');
    assert.equal(entries().length, 1, 'the second run took the same entry');
  });

  void it('driver choice: wasm runs only wasm languages, and wasm languages run only on it', async () => {
    const py = await post('/v1/runs', { language: 'python', code: 'print(1)', driver: 'wasm' });
    assert.equal(py.status, 400);
    assert.equal(py.body.error?.code, 'INVALID_REQUEST');
    assert.match(py.body.error?.message ?? '', /wasm driver/);
    const gv = await post('/v1/runs', { language: 'wasm', files: [wasmFile(tool)], driver: 'gvisor' });
    assert.equal(gv.status, 400);
    assert.equal(gv.body.error?.code, 'INVALID_REQUEST');
    assert.match(gv.body.error?.message ?? '', /wasm driver only/);
  });

  void it('nothing is left behind, with the daemon running and after it stopped', async () => {
    assert.deepEqual(await leftovers(t), []);
    closed = true;
    await t.close();
    assert.deepEqual(await leftovers({ dataDir: t.dataDir, cgroupRoot: t.cgroupRoot }), []);
  });
});
