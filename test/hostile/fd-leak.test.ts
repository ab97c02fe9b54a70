/**
 * A hostile program looks for descriptors the daemon's process holds: the daemon runs in a child
 * process that inherited an open, writable host file (as a daemon started by a supervisor, a shell
 * or socket activation can), and the program must not be able to read or write it.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Client } from '@realm/sdk';
import { testDriverSkipReason, removeTestDirs } from '../helpers/daemon.js';
import { MICROVM, PY_ATTEMPT, type DaemonRef, assertClean, assertHealthy, nonce, pyGuard, runBoth } from './common.js';

const skip = await testDriverSkipReason();

void test(
  "no descriptor of the daemon's process reaches a sandbox",
  {
    skip,
  },
  async () => {
    const mark = nonce();
    const secret = `fd-secret-${mark}`;
    const dir = mkdtempSync(join(tmpdir(), 'realm-fdleak-'));
    const secretPath = join(dir, `host-file-${mark}`);
    writeFileSync(secretPath, secret, { mode: 0o600 });
    // A shell opens the file on fd 40 and execs the daemon, as `realm serve 40<>file` would. (Node
    // itself marks low inherited fds close-on-exec at start-up, not higher ones.)
    const script = fileURLToPath(new URL('./fd-daemon.js', import.meta.url));
    const child = spawn('/bin/bash', ['-c', 'exec "$0" "$1" 40<>"$2"', process.execPath, script, secretPath], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const { stdin, stdout } = child;
    let ref: DaemonRef | undefined;
    try {
      const [line] = (await once(createInterface({ input: stdout }), 'line')) as [string];
      const info = JSON.parse(line) as { url: string; token: string; dataDir: string; cgroupRoot: string };
      ref = info;
      // Only the descriptor that names our own host file is touched; others are only listed.
      const code = `${pyGuard(info.dataDir)}${PY_ATTEMPT}
NAME = ${JSON.stringify(`host-file-${mark}`)}
extra = []
for pid in ('self', '1'):
    try:
        fds = os.listdir('/proc/%s/fd' % pid)
        R['list %s' % pid] = 'OK'
    except OSError as e:
        R['list %s' % pid] = errname(e)
        continue
    for fd in fds:
        try:
            link = os.readlink('/proc/%s/fd/%s' % (pid, fd))
        except OSError:
            continue
        if pid == 'self' and int(fd) <= 2:
            continue
        extra.append('%s/%s -> %s' % (pid, fd, link))
        if link.endswith(NAME):
            if pid == 'self':
                attempt('read fd %s' % fd, lambda fd=int(fd): os.pread(fd, 100, 0).decode())
                attempt('write fd %s' % fd, lambda fd=int(fd): os.pwrite(fd, b' written from a sandbox', 200))
            path = '/proc/%s/fd/%s' % (pid, fd)
            attempt('read ' + path, lambda path=path: open(path, 'rb').read(100).decode())
            attempt('write ' + path, lambda path=path: os.pwrite(os.open(path, os.O_WRONLY), b' written from a sandbox', 200))
R['extra fds'] = '; '.join(extra)
done()
`;
      for (const { via, rec } of await runBoth({ client: new Client({ url: info.url, token: info.token }) }, code)) {
        const touched = Object.entries(rec).filter(([k, v]) => /^(read|write) /.test(k) && v.startsWith('OK'));
        assert.deepEqual(
          touched,
          [],
          `${via}the sandbox used the daemon's descriptor of ${secretPath} (fds it holds: ${rec['extra fds']})`,
        );
        assert.doesNotMatch(
          rec['extra fds'] ?? '',
          new RegExp(`host-file-${mark}`),
          `${via}the daemon's descriptor is open in the sandbox`,
        );
        assert.equal(rec['list self'], 'OK', via);
        // PID 1 is the sandbox's own init on namespace and gvisor, whose descriptors the program can
        // list. On microvm it is the guest agent (root in the VM's own kernel, which holds no host
        // descriptor at all): the sandbox user may not list its descriptors.
        assert.equal(rec['list 1'], MICROVM ? 'EACCES' : 'OK', via);
      }
      assert.equal(readFileSync(secretPath, 'utf8'), secret, 'the host file was changed from inside a sandbox');
      await assertHealthy(info);
    } finally {
      stdin.end();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      if (ref) {
        await assertClean(ref);
        removeTestDirs(ref);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
