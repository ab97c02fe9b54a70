/**
 * The C module of the wasm driver's hostile file and environment suites (files.test.ts,
 * environment.test.ts), and what each suite starts with: a host file holding a secret outside
 * every sandbox, a marker in the daemon's environment, a daemon, the module built.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { run, type Client, type RunResult } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, type TestDaemon } from '../../helpers/daemon.js';
import { cWasm, wasmFile } from '../../helpers/wasm.js';
import { nonce } from '../common.js';
import { wasiGuard } from './common.js';

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

export interface FilesFixture {
  t: TestDaemon;
  /** The module (FILES_C) built. */
  tool: Buffer;
  /** A host dir, and a host file in it holding `secret`. */
  hostDir: string;
  hostFile: string;
}

/**
 * Start all before a suite's tests and remove it after, handing the fixture to `set`; returns
 * the secret, the marker variable (set in this process, the daemon's, while the suite runs), a
 * run of the module with these args, and a check that output holds no secret.
 */
export function filesFixture(
  skip: string | undefined,
  set: (f: FilesFixture) => void,
): {
  secret: string;
  envMarker: string;
  runTool: (args: string[], client?: Client) => Promise<RunResult>;
  noSecret: (out: string) => void;
} {
  let f: FilesFixture | undefined;
  let hostDir = '';
  const secret = `secret-${nonce()}`;
  const envMarker = `REALM_HOSTILE_${nonce().toUpperCase()}`;
  before(async () => {
    if (skip) return;
    hostDir = mkdtempSync(join(tmpdir(), 'realm-wasm-hostile-'));
    const hostFile = join(hostDir, 'host-secret');
    writeFileSync(hostFile, `${secret}\n`, { mode: 0o644 });
    // In the daemon's environment (this process): no module may see it.
    process.env[envMarker] = secret;
    const t = await startTestDaemon({ warm: 0 });
    f = { t, tool: await cWasm(FILES_C(t.dataDir)), hostDir, hostFile };
    set(f);
  });
  after(async () => {
    delete process.env[envMarker];
    if (hostDir) rmSync(hostDir, { recursive: true, force: true });
    if (!f) return;
    await f.t.close();
    removeTestDirs(f.t);
  });
  return {
    secret,
    envMarker,
    runTool: (args, client) => {
      if (!f) throw new Error('the fixture is not set up');
      return run({ language: 'wasm', files: [wasmFile(f.tool)], args, timeout: '30s' }, client ?? f.t.client);
    },
    noSecret: (out) => assert.ok(!out.includes(secret), `the host's secret reached the module:\n${out}`),
  };
}
