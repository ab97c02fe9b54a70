/** The CLI end to end: bin/realm against a real daemon, and starting one when none answers. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type CliResult, REALM_BIN, realm } from '../helpers/cli.js';
import { daemonHooks, leftovers, namespaceSkipReason, removeTestDirs, type TestDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { stopBackgroundDaemon } from '../helpers/spawned-daemon.js';
import { wasmSkipReason, wat } from '../helpers/wasm.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping CLI tests: ${skip}`);

/** bin/realm against the daemon at `url` (without blocking the event loop: the daemon under test lives in this process). */
const realmAt = (url: string, args: string[], env: Record<string, string> = {}, input?: string): Promise<CliResult> =>
  realm(args, { url, env, maxBuffer: 16 * 1024 * 1024, ...(input !== undefined ? { input } : {}) });

void describe('realm CLI', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  void it('run prints output and exits with the program’s code', async () => {
    const ok = await realmAt(t.url, ['run', 'python', '-c', 'print(6*7)']);
    assert.equal(ok.stdout, '42\n');
    assert.equal(ok.code, 0);
    const fail = await realmAt(t.url, ['run', 'bash', '-c', 'echo oops >&2; exit 5']);
    assert.equal(fail.code, 5);
    assert.equal(fail.stderr, 'oops\n');
  });

  void it('run --json has the documented fields; a FILE and --stdin work; timeouts say so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-cli-'));
    const file = join(dir, 'prog.c');
    writeFileSync(file, '#include <stdio.h>\nint main(void){int x; scanf("%d",&x); printf("%d\\n", x*2); return 0;}\n');
    const r = await realmAt(t.url, ['run', 'c', file, '--stdin', '21', '--json']);
    const j = JSON.parse(r.stdout) as Record<string, unknown>;
    for (const k of ['stdout', 'stderr', 'exitCode', 'signal', 'verdict', 'wallMs', 'cpuMs', 'memoryBytes']) assert.ok(k in j, k);
    assert.equal(j.stdout, '42\n');
    assert.equal(j.verdict, 'ok');
    rmSync(dir, { recursive: true, force: true });
    const slow = await realmAt(t.url, ['run', 'python', '-c', 'while True: pass', '--timeout', '300ms']);
    assert.equal(slow.code, 124);
    assert.match(slow.stderr, /timeout/);
  });

  void it('run wasm FILE.wasm sends the module as bytes; --fuel ends an endless loop fuel-exhausted', async (c) => {
    const why = await wasmSkipReason();
    if (why) return c.skip(why);
    const dir = mkdtempSync(join(tmpdir(), 'realm-cli-'));
    try {
      const file = join(dir, 'loop.wasm');
      writeFileSync(file, await wat('(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))'));
      const r = await realmAt(t.url, ['run', 'wasm', file, '--fuel', '1000000', '--json']);
      const j = JSON.parse(r.stdout) as { verdict: string; stderr: string };
      assert.equal(j.verdict, 'fuel-exhausted', r.stdout + r.stderr);
      assert.match(j.stderr, /wasm trap: /);
      assert.notEqual(r.code, 0);
      const quiet = join(dir, 'quiet.wasm');
      writeFileSync(quiet, await wat('(module (memory (export "memory") 1) (func (export "_start")))'));
      const ok = await realmAt(t.url, ['run', 'wasm', quiet, '--fuel', '1000000', '--json']);
      assert.equal((JSON.parse(ok.stdout) as { verdict: string }).verdict, 'ok', ok.stdout + ok.stderr);
      assert.equal(ok.code, 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  void it('a run ended by its output limit reports the cpu time and memory it used', async () => {
    // The limit kills the whole sandbox; the figures are what its cgroup counted up to then.
    for (let i = 0; i < 3; i++) {
      const r = await realmAt(t.url, ['run', 'bash', '-c', 'yes', '--json']);
      const j = JSON.parse(r.stdout) as { verdict: string; cpuMs: number; memoryBytes: number };
      assert.equal(j.verdict, 'output-limit');
      assert.ok(j.cpuMs > 0, `cpuMs ${j.cpuMs}`);
      assert.ok(j.memoryBytes > 0, `memoryBytes ${j.memoryBytes}`);
    }
  });

  void it('-i gives run and sandbox exec this process’s stdin; with --stdin too it is a usage error', async () => {
    const up = await realmAt(
      t.url,
      ['run', 'python', '-c', 'import sys; print(sys.stdin.read().upper(), end="")', '-i'],
      {},
      'piped\nlines\n',
    );
    assert.deepEqual([up.code, up.stdout], [0, 'PIPED\nLINES\n']);
    const id = (await realmAt(t.url, ['sandbox', 'create'])).stdout.trim();
    const exec = await realmAt(
      t.url,
      ['sandbox', 'exec', '-i', id, '--', 'sh', '-c', 'cat > /tmp/in; wc -c < /tmp/in'],
      {},
      'x'.repeat(100_000),
    );
    assert.deepEqual([exec.code, exec.stdout.trim()], [0, '100000']);
    const both = await realmAt(t.url, ['sandbox', 'exec', '-i', '--stdin', 'a', id, '--', 'true'], {}, 'b');
    assert.equal(both.code, 2);
    assert.match(both.stderr, /not both \[INVALID_REQUEST\]/);
    assert.equal((await realmAt(t.url, ['sandbox', 'rm', id])).code, 0);
  });

  void it('run --compile-timeout, --compile-memory and --compile-pids reach the compile step', async () => {
    const prog = '#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n';
    const fits = await realmAt(t.url, [
      'run',
      'c',
      '-c',
      prog,
      '--compile-timeout',
      '60s',
      '--compile-memory',
      '512m',
      '--compile-pids',
      '64',
      '--json',
    ]);
    const ok = JSON.parse(fits.stdout) as { verdict: string; stdout: string; compile?: { verdict: string } };
    assert.deepEqual([fits.code, ok.verdict, ok.stdout, ok.compile?.verdict], [0, 'ok', 'hi\n', 'ok']);
    // gcc cannot start, let alone compile, in a millisecond: the compile step times out and the
    // program never runs; the engine reports the run's verdict as the compile step's.
    const short = await realmAt(t.url, ['run', 'c', '-c', prog, '--compile-timeout', '1ms', '--json']);
    const tj = JSON.parse(short.stdout) as { verdict: string; stdout: string; compile?: { verdict: string } };
    assert.deepEqual([short.code, tj.verdict, tj.compile?.verdict, tj.stdout], [124, 'timeout', 'timeout', '']);
    const streamed = await realmAt(t.url, ['run', 'c', '-c', prog, '--compile-timeout', '1ms']);
    assert.equal(streamed.code, 124);
    assert.equal(streamed.stdout, '');
    assert.match(streamed.stderr, /^realm: timeout while compiling$/m);
    // Values the daemon refuses name the field; a count that is not a number never leaves the CLI.
    const low = await realmAt(t.url, ['run', 'c', '-c', prog, '--compile-pids', '4']);
    assert.equal(low.code, 2);
    assert.match(low.stderr, /compilePids.*\[INVALID_REQUEST\]/);
    const lots = await realmAt(t.url, ['run', 'c', '-c', prog, '--compile-memory', 'lots']);
    assert.equal(lots.code, 2);
    assert.match(lots.stderr, /compileMemory.*not a size.*\[INVALID_REQUEST\]/);
    const words = await realmAt(t.url, ['run', 'c', '-c', prog, '--compile-pids', 'many']);
    assert.equal(words.code, 2);
    assert.match(words.stderr, /--compile-pids is a whole number.*\[INVALID_REQUEST\]/);
    assert.deepEqual(await leftovers(t), []);
  });

  void it('sandbox create, ls, inspect, exec, rm; volume ls and rm', async () => {
    const id = (
      await realmAt(t.url, [
        'sandbox',
        'create',
        '--name',
        'cli-box',
        '--memory',
        '256m',
        '--volume',
        'cli-vol:/data',
        '--label',
        'k=v',
      ])
    ).stdout.trim();
    assert.match(id, /^sb-/);
    const ls = await realmAt(t.url, ['sandbox', 'ls']);
    assert.match(ls.stdout, /cli-box/);
    const list = JSON.parse((await realmAt(t.url, ['sandbox', 'ls', '--json', '--label', 'k=v'])).stdout) as { id: string }[];
    assert.deepEqual(
      list.map((s) => s.id),
      [id],
    );
    const info = JSON.parse((await realmAt(t.url, ['sandbox', 'inspect', 'cli-box'])).stdout) as {
      limits: { memoryBytes: number };
    };
    assert.equal(info.limits.memoryBytes, 256 * 1024 ** 2);
    const ex = await realmAt(t.url, ['sandbox', 'exec', id, '--', 'sh', '-c', 'echo hi > /data/f; cat /data/f; exit 3']);
    assert.equal(ex.stdout, 'hi\n');
    assert.equal(ex.code, 3);
    // sandbox cp: bytes in (parents made, the mode given) and back out, unchanged.
    const dir = mkdtempSync(join(tmpdir(), 'realm-cli-cp-'));
    try {
      const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      writeFileSync(join(dir, 'in.bin'), bytes);
      assert.equal((await realmAt(t.url, ['sandbox', 'cp', join(dir, 'in.bin'), 'cli-box:d/x.bin', '--mode', '750'])).code, 0);
      const st = await realmAt(t.url, ['sandbox', 'exec', id, '--', 'stat', '-c', '%a %s', '/home/user/d/x.bin']);
      assert.equal(st.stdout, '750 256\n', st.stderr);
      assert.equal((await realmAt(t.url, ['sandbox', 'cp', `${id}:d/x.bin`, join(dir, 'out.bin')])).code, 0);
      assert.deepEqual(readFileSync(join(dir, 'out.bin')), bytes);
      const both = await realmAt(t.url, ['sandbox', 'cp', join(dir, 'in.bin'), join(dir, 'other.bin')]);
      assert.equal(both.code, 2);
      assert.match(both.stderr, /ID:PATH.*INVALID_REQUEST/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.match((await realmAt(t.url, ['volume', 'ls'])).stdout, /cli-vol/);
    const busy = await realmAt(t.url, ['volume', 'rm', 'cli-vol']);
    assert.equal(busy.code, 1);
    assert.match(busy.stderr, /VOLUME_IN_USE/);
    assert.equal((await realmAt(t.url, ['sandbox', 'rm', 'cli-box'])).code, 0);
    assert.equal((await realmAt(t.url, ['volume', 'rm', 'cli-vol'])).code, 0);
    assert.deepEqual(await leftovers(t), []);
  });

  void it('bad input: a clear message with a code, and a usage exit status', async () => {
    const r = await realmAt(t.url, ['sandbox', 'create', '--memory', 'lots']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /memory.*not a size.*\[INVALID_REQUEST\]/);
    const nf = await realmAt(t.url, ['sandbox', 'exec', 'sb-nope', '--', 'true']);
    assert.equal(nf.code, 1);
    assert.match(nf.stderr, /SANDBOX_NOT_FOUND/);
    const lang = await realmAt(t.url, ['run', 'klingon', '-c', 'x']);
    assert.match(lang.stderr, /LANGUAGE_NOT_FOUND/);
    // The daemon's own errors (serve runs it in the CLI's process) print and exit as the SDK's do.
    const serve = await realmAt(t.url, ['serve', '--max-layer-size', 'bogus']);
    assert.equal(serve.code, 2);
    assert.match(serve.stderr, /^realm: --max-layer-size bogus: .*\[INVALID_REQUEST\]$/m);
  });

  void it('a reader that goes away ends the command quietly', async () => {
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const script = `"${REALM_BIN}" run bash -c 'yes | head -c 900000' | head -1; echo "status \${PIPESTATUS[0]}"`;
      execFile(
        'bash',
        ['-c', script],
        { encoding: 'utf8', env: { ...process.env, REALM_URL: t.url, REALM_TOKEN: t.token }, timeout: 60_000 },
        (err, stdout, stderr) => resolve({ code: err ? null : 0, stdout, stderr }),
      );
    });
    assert.equal(r.code, 0);
    assert.equal(r.stderr, '');
    assert.equal(r.stdout, 'y\nstatus 141\n');
    assert.deepEqual(await leftovers(t), []);
  });

  void it('doctor and lang ls, as tables and as JSON', async () => {
    const doc = JSON.parse((await realmAt(t.url, ['doctor', '--json'])).stdout) as {
      drivers: { name: string; available: boolean }[];
    };
    assert.ok(doc.drivers.some((d) => d.name === 'namespace' && d.available));
    const doctor = (await realmAt(t.url, ['doctor'])).stdout;
    assert.match(doctor, /driver namespace: available/);
    // The defaults open nothing (each sandbox has a host uid of its own: no warning about a shared one).
    assert.doesNotMatch(doctor, /^WARNING:/m);
    assert.match(doctor, /^image builds: (available \(mmdebstrap \d|NOT available: mmdebstrap is not installed)/m);
    const langs = JSON.parse((await realmAt(t.url, ['lang', 'ls', '--json'])).stdout) as {
      name: string;
      version: string;
      image: string;
      ready: boolean;
    }[];
    const onHost = langs.filter((l) => l.image === 'host');
    assert.deepEqual(onHost.map((l) => l.name).sort(), ['bash', 'c', 'c-wasm', 'node', 'python', 'wasm']);
    // wasm and c-wasm are ready where the wasm driver's engine and clang's wasm target are installed.
    const wasmToo = (await wasmSkipReason()) === undefined;
    assert.ok(
      onHost.filter((l) => wasmToo || !l.name.includes('wasm')).every((l) => l.ready && /\d/.test(l.version)),
      JSON.stringify(onHost),
    );
    // The others run in the `langs` image, not built in this data dir: the table says how to build it.
    assert.ok(langs.filter((l) => l.image === 'langs').every((l) => !l.ready && l.version === 'not built'));
    assert.match((await realmAt(t.url, ['lang', 'ls'])).stdout, /image "langs" is not built: realm image build langs/);
  });

  void it('with no daemon answering, the CLI starts one in the background and says so', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-auto-'));
    const cgroupRoot = `realm-test-auto-${process.pid}`;
    const env = { REALM_DATA_DIR: dataDir, REALM_CGROUP_ROOT: cgroupRoot };
    try {
      const r = await realmAt(`http://127.0.0.1:${port}`, ['run', 'bash', '-c', 'echo up'], env);
      assert.equal(r.stdout, 'up\n');
      assert.match(r.stderr, /started the daemon in the background/);
      const again = await realmAt(`http://127.0.0.1:${port}`, ['run', 'bash', '-c', 'echo up'], env);
      assert.doesNotMatch(again.stderr, /started/);
    } finally {
      await stopBackgroundDaemon(dataDir);
      assert.deepEqual(await leftovers({ dataDir, cgroupRoot }), []);
      removeTestDirs({ dataDir, cgroupRoot });
    }
  });
});
