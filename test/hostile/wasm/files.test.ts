/**
 * Hostile WASI modules against the wasm driver's file and environment boundary: a module sees
 * only its preopened directories (a run's working directory; a sandbox's working directory and
 * volumes, read-only where asked), only the args and environment it was given, clocks and random
 * numbers, and nothing else of the sandbox or the host. (Runs once: see common.ts.)
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox, run, type Client } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, type TestDaemon } from '../../helpers/daemon.js';
import { cWasm, component, wasmFile, wasmSkipReason } from '../../helpers/wasm.js';
import { assertContained, nonce } from '../common.js';
import { lines, wasiGuard } from './common.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile file tests: ${skip}`);

/** One module, its behaviour chosen by argv[1]; every attempt prints `what: outcome`. */
const FILES_C = (dataDir: string): string => `${wasiGuard(dataDir)}
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <wasi/api.h>
extern char **environ;

static const char *err(void) { return strerror(errno); }

/* Open for reading; print what was read (the test looks for secrets in it). */
static void try_read(const char *p) {
  int fd = open(p, O_RDONLY);
  if (fd < 0) { printf("%s: %s\\n", p, err()); return; }
  char buf[128] = {0};
  ssize_t n = read(fd, buf, sizeof buf - 1);
  for (ssize_t i = 0; i < n; i++) if (buf[i] == '\\n' || buf[i] == ':') buf[i] = ' ';
  printf("%s: opened %s\\n", p, n >= 0 ? buf : "(a directory)");
  close(fd);
}

static void try_write(const char *p) {
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) { printf("%s: %s\\n", p, err()); return; }
  printf("%s: %s\\n", p, write(fd, "owned", 5) == 5 ? "written" : err());
  close(fd);
}

#define TRY(what, call) printf("%s: %s\\n", what, (call) == 0 ? "done" : err())

int main(int argc, char **argv) {
  guard();
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "read")) for (int i = 2; i < argc; i++) try_read(argv[i]);
  else if (!strcmp(mode, "write")) for (int i = 2; i < argc; i++) try_write(argv[i]);
  else if (!strcmp(mode, "symlink")) {
    /* symlink TARGET LINK…: make each link, then read through it */
    for (int i = 3; i < argc; i++) {
      printf("symlink %s: %s\\n", argv[i], symlink(argv[2], argv[i]) == 0 ? "made" : err());
      try_read(argv[i]);
    }
  } else if (!strcmp(mode, "mutate")) {
    /* mutate DIR FILE: every way to change a read-only directory */
    char f[512], g[512], d[512], s[512];
    snprintf(f, sizeof f, "%s/%s", argv[2], argv[3]);
    snprintf(g, sizeof g, "%s/renamed", argv[2]);
    snprintf(d, sizeof d, "%s/newdir", argv[2]);
    snprintf(s, sizeof s, "%s/newlink", argv[2]);
    try_write(f);
    int fd = open(f, O_WRONLY | O_APPEND);
    printf("append: %s\\n", fd >= 0 ? "opened" : err());
    TRY("truncate", truncate(f, 0));
    TRY("rename", rename(f, g));
    TRY("unlink", unlink(f));
    TRY("mkdir", mkdir(d, 0755));
    TRY("symlink", symlink("x", s));
    TRY("link", link(f, s));
    struct timeval tv[2] = {{0, 0}, {0, 0}};
    TRY("utimes", utimes(f, tv));
  } else if (!strcmp(mode, "env")) {
    printf("argc: %d\\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d]: %s\\n", i, argv[i]);
    for (char **e = environ; *e; e++) printf("env %s: set\\n", *e);
  } else if (!strcmp(mode, "preopens")) {
    for (__wasi_fd_t fd = 3; fd < 64; fd++) {
      __wasi_prestat_t ps;
      if (__wasi_fd_prestat_get(fd, &ps) != 0) continue;
      char name[512] = {0};
      if (ps.u.dir.pr_name_len < sizeof name) (void)__wasi_fd_prestat_dir_name(fd, (uint8_t *)name, ps.u.dir.pr_name_len);
      printf("preopen %d: %s\\n", fd, name);
    }
    /* No fd is a socket: there is nothing to accept on or shut down. */
    int socks = 0;
    for (__wasi_fd_t fd = 0; fd < 64; fd++) {
      __wasi_fd_t got;
      if (__wasi_sock_accept(fd, 0, &got) == 0 || __wasi_sock_shutdown(fd, __WASI_SDFLAGS_RD) == 0) socks++;
    }
    printf("sockets: %d\\n", socks);
  } else if (!strcmp(mode, "clock")) {
    struct timespec r, m1, m2;
    clock_gettime(CLOCK_REALTIME, &r);
    clock_gettime(CLOCK_MONOTONIC, &m1);
    for (volatile int i = 0; i < 1000000; i++) {}
    clock_gettime(CLOCK_MONOTONIC, &m2);
    printf("realtime: %lld\\n", (long long)r.tv_sec);
    printf("monotonic: %s\\n", m2.tv_sec > m1.tv_sec || (m2.tv_sec == m1.tv_sec && m2.tv_nsec >= m1.tv_nsec) ? "forward" : "backward");
    unsigned char a[16], b[16];
    printf("random: %s\\n", getentropy(a, 16) == 0 && getentropy(b, 16) == 0 ? (memcmp(a, b, 16) ? "differs" : "repeats") : err());
  } else if (!strcmp(mode, "exit")) {
    exit(atoi(argv[2]));
  }
  return 0;
}
`;

void describe('hostile wasm modules: files, args, environment', { skip }, () => {
  let t: TestDaemon;
  let tool: Buffer;
  /** A host file with a secret in it, outside every sandbox, and a host dir holding it. */
  let hostDir: string;
  let hostFile: string;
  const secret = `secret-${nonce()}`;
  const envMarker = `REALM_HOSTILE_${nonce().toUpperCase()}`;
  before(async () => {
    if (skip) return;
    hostDir = mkdtempSync(join(tmpdir(), 'realm-wasm-hostile-'));
    hostFile = join(hostDir, 'host-secret');
    writeFileSync(hostFile, `${secret}\n`, { mode: 0o644 });
    // In the daemon's environment (this process): no module may see it.
    process.env[envMarker] = secret;
    t = await startTestDaemon({ warm: 0 });
    tool = await cWasm(FILES_C(t.dataDir));
  });
  after(async () => {
    delete process.env[envMarker];
    if (hostDir) rmSync(hostDir, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  const runTool = (args: string[], client: Client = t.client) =>
    run({ language: 'wasm', files: [wasmFile(tool)], args, timeout: '30s' }, client);
  const noSecret = (out: string): void => assert.ok(!out.includes(secret), `the host's secret reached the module:\n${out}`);

  void it('escapes by path from a run: .., absolute paths, /proc, the runner itself, the host file: all refused', async () => {
    const paths = [
      '..',
      '../..',
      '../../etc/passwd',
      '/home/user/../../etc/passwd',
      './../user/../../etc/hostname',
      '/etc/passwd',
      '/etc',
      '/proc/self/environ',
      '/proc/self/mem',
      '/proc/1/root/etc/passwd',
      '/usr/local/lib/realm/wasm-runner/realm-wasm',
      '/usr/bin/python3',
      '/tmp',
      '/dev/null',
      hostFile,
      t.dataDir,
      '//etc/passwd',
      '/home/user/main.wasm/..',
    ];
    const r = await runTool(['read', ...paths]);
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
    noSecret(r.stdout + r.stderr);
    // The working directory itself opens, by both of its names.
    const own = lines(await runTool(['read', 'main.wasm', '/home/user/main.wasm']));
    assert.match(own['main.wasm'] ?? '', /^opened/);
    assert.match(own['/home/user/main.wasm'] ?? '', /^opened/);
    await assertContained(t);
  });

  void it('a run sees exactly its two preopens (. and /home/user), and no socket', async () => {
    const r = await runTool(['preopens']);
    assert.equal(r.verdict, 'ok', r.stderr);
    const pre = r.stdout.split('\n').filter((l) => l.startsWith('preopen '));
    assert.deepEqual(
      pre.map((l) => l.replace(/^preopen \d+: /, '')),
      ['.', '/home/user'],
    );
    assert.equal(lines(r).sockets, '0');
  });

  void it('symlinks the module makes in its own directory lead nowhere outside it', async () => {
    const links = ['l-abs', 'l-up', 'l-host', 'l-proc'];
    const targets = ['/etc/passwd', '../../etc/passwd', hostFile, '/proc/self/environ'];
    for (const [i, target] of targets.entries()) {
      const r = await runTool(['symlink', target, links[i]]);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      assert.ok(!got[links[i]]?.startsWith('opened'), `${links[i]} -> ${target}: ${got[links[i]]}`);
      noSecret(r.stdout);
    }
    // A link inside the directory to a file inside it still works: the refusal is about leaving.
    const inside = lines(await runTool(['symlink', 'main.wasm', 'l-in']));
    assert.match(inside['l-in'] ?? '', /^opened/);
    await assertContained(t);
  });

  void it('symlinks planted in a volume (to /etc, /proc, the host file, upwards) lead nowhere from a wasm sandbox', async () => {
    const vol = `wasm-hostile-${nonce()}`;
    // Planted by a native sandbox (a shell can make any link), then mounted into a wasm one.
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    const plant = await planter.exec([
      '/bin/sh',
      '-c',
      `ln -s /etc/passwd /data/passwd && ln -s /etc /data/etc && ln -s /proc/self /data/self && ln -s ${hostFile} /data/host && ln -s ../../../../.. /data/up && echo ok > /data/plain`,
    ]);
    assert.equal(plant.exitCode, 0, plant.stderr);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data' }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      const paths = [
        '/data/passwd',
        '/data/etc/passwd',
        '/data/etc',
        '/data/self/environ',
        '/data/host',
        `/data/up${hostFile}`,
        '/data/up/etc/passwd',
      ];
      const r = await sb.exec(['main.wasm', 'read', ...paths, '/data/plain']);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
      assert.equal(got['/data/plain'], 'opened ok ');
      noSecret(r.stdout + r.stderr);
      // Writing through them goes nowhere either.
      const w = await sb.exec(['main.wasm', 'write', '/data/passwd', '/data/host', '/data/etc/realm-owned']);
      const wrote = lines(w);
      for (const p of ['/data/passwd', '/data/host', '/data/etc/realm-owned']) assert.notEqual(wrote[p], 'written', p);
      assert.equal(readFileSync(hostFile, 'utf8'), `${secret}\n`, 'the host file is unchanged');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it('a read-only volume refuses every change: write, append, truncate, rename, unlink, mkdir, links, times', async () => {
    const vol = `wasm-ro-${nonce()}`;
    const writer = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    await writer.files.write('/data/kept.txt', 'original\n');
    await writer.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data', readOnly: true }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      const r = await sb.exec(['main.wasm', 'mutate', '/data', 'kept.txt']);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      for (const what of ['/data/kept.txt', 'append', 'truncate', 'rename', 'unlink', 'mkdir', 'symlink', 'link', 'utimes'])
        assert.ok(got[what] && !['written', 'opened', 'done'].includes(got[what]), `${what}: ${got[what] ?? '(not tried)'}`);
      const after = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
      const ls = await after.exec(['/bin/sh', '-c', 'ls -A /data; cat /data/kept.txt']);
      await after.destroy();
      assert.equal(ls.stdout, 'kept.txt\noriginal\n', 'the read-only volume changed');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it("an exec's working directory is its module's preopen: outside the home and volumes, or through a link, it is refused", async () => {
    const vol = `wasm-cwd-${nonce()}`;
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    const plant = await planter.exec([
      '/bin/sh',
      '-c',
      'ln -s /proc/self /data/self && ln -s /etc /data/etc && mkdir /data/real',
    ]);
    assert.equal(plant.exitCode, 0, plant.stderr);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data', readOnly: true }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      // A module cannot plant such a link itself: WASI refuses a link to an absolute path.
      const made = lines(await sb.exec(['main.wasm', 'symlink', '/proc/self', 'self']));
      assert.ok(made['symlink self'] && made['symlink self'] !== 'made', `symlink self: ${made['symlink self']}`);
      const probe = ['/proc/self/environ', 'environ', 'passwd', '/etc/passwd', 'status'];
      const refused: string[] = [];
      const linked: string[] = [];
      for (const cwd of [
        '/',
        '/proc',
        '/proc/self',
        '/etc',
        '/tmp',
        '/usr/local/lib/realm',
        '/home/user/../../proc',
        '/data/self',
        '/data/etc',
      ]) {
        try {
          const r = await sb.exec(['/home/user/main.wasm', 'read', ...probe], { cwd });
          const got = lines(r);
          // Past the driver's check (a link inside the home or a volume): the runner refuses the link.
          assert.equal(r.verdict, 'runtime-error', `cwd ${cwd}: ${r.stdout}`);
          assert.match(r.stderr, /symbolic link/, `cwd ${cwd}`);
          for (const p of probe) assert.ok(!got[p]?.startsWith('opened'), `cwd ${cwd}: ${p}: ${got[p]}`);
          linked.push(cwd);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.equal((e as { code?: string }).code, 'INVALID_REQUEST', `cwd ${cwd}: ${String(e)}`);
          refused.push(cwd);
        }
      }
      assert.deepEqual(refused, ['/', '/proc', '/proc/self', '/etc', '/tmp', '/usr/local/lib/realm', '/home/user/../../proc']);
      assert.deepEqual(linked, ['/data/self', '/data/etc']);
      // A directory inside a read-only volume is a read-only working directory.
      const ro = lines(await sb.exec(['/home/user/main.wasm', 'write', 'new.txt'], { cwd: '/data/real' }));
      assert.notEqual(ro['new.txt'], 'written');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it('a preview 2 component (runner.py) meets the same walls: escapes refused, no preopen through a link', async () => {
    const comp = await component(tool);
    const paths = [
      '..',
      '../../etc/passwd',
      '/etc/passwd',
      '/proc/self/environ',
      hostFile,
      '/usr/local/lib/realm/wasm-runner/runner.py',
    ];
    const r = await run(
      { language: 'wasm', files: [wasmFile(comp)], args: ['read', ...paths, 'main.wasm'], timeout: '30s' },
      t.client,
    );
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
    assert.match(got['main.wasm'] ?? '', /^opened/);
    noSecret(r.stdout + r.stderr);
    const vol = `wasm-comp-${nonce()}`;
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    assert.equal((await planter.exec(['/bin/ln', '-s', '/proc/self', '/data/self'])).exitCode, 0);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data' }] }, t.client);
    try {
      await sb.files.write('/home/user/comp.wasm', comp);
      const linked = await sb.exec(['/home/user/comp.wasm', 'read', 'environ', 'status'], { cwd: '/data/self' });
      assert.equal(linked.verdict, 'runtime-error', linked.stdout);
      assert.match(linked.stderr, /symbolic link/);
      assert.doesNotMatch(linked.stdout, /opened/);
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

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
