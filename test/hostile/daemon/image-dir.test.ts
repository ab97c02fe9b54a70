/**
 * A host directory as the image: an API caller who names `/` (or any host path) as the image
 * sees the host's files from inside, the daemon's state (other sandboxes' injected secrets) and
 * other sandboxes' proxy sockets among them. Root filesystem directories are images only inside
 * the directories the operator allows (`--image-dir`), never `/` nor anything holding the data dir.
 *
 * Driver-independent (test/hostile/daemon/, run once per `npm test`): which host directories may
 * be images is decided by the engine (src/engine/image-dirs.ts) before any driver is asked; each
 * driver mounting an allowed directory read-only is the conformance suite's image case.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { join } from 'node:path';
import { test } from 'node:test';
import { Sandbox } from '@realm/sdk';
import { removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../../helpers/daemon.js';
import { assertContained, assertNoGuard, nonce } from '../common.js';

const skip = await testDriverSkipReason();

/** Data dirs outside /tmp: a sandbox gets a /tmp of its own, which would hide one there from a host root. */
const VAR_TMP = '/var/tmp';

/**
 * The guard of a program meant to see the host's root: it must still be in a sandbox, as the
 * sandbox user (uid 1000) in a PID namespace of its own (a small pid, not the host's namespace).
 */
function rootGuard(): string {
  const hostPidNs = readlinkSync('/proc/self/ns/pid');
  return `if [ "$(id -u)" != 1000 ] || [ "$$" -gt 1000 ] || [ "$(readlink /proc/self/ns/pid 2>/dev/null)" = ${JSON.stringify(hostPidNs)} ]; then echo GUARD; exit 99; fi
`;
}

async function withDaemon(opts: Parameters<typeof startTestDaemon>[0], fn: (t: TestDaemon) => Promise<void>): Promise<void> {
  const t = await startTestDaemon({ dataDir: mkdtempSync(join(VAR_TMP, 'realm-hostile-')), warm: 0, ...opts });
  try {
    await fn(t);
    for (const s of await t.daemon.engine.listSandboxes()) await t.daemon.engine.destroySandbox(s.id);
    await assertContained(t);
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

void test(
  'image "/" is refused: no sandbox reads the daemon\'s state or reaches another sandbox\'s proxy',
  { skip },
  async () => {
    await withDaemon({}, async (t) => {
      const secret = `secret-${nonce()}`;
      // The victim: a sandbox whose proxy injects a secret header.
      const victim = await Sandbox.create(
        { allow: ['example.com'], inject: [{ host: 'example.com', header: 'X-Key', value: secret }] },
        t.client,
      );
      const program = `${rootGuard()}D=${JSON.stringify(t.dataDir)}
cat "$D/state.db" "$D/state.db-wal" 2>/dev/null | grep -a -c ${JSON.stringify(secret)} | sed 's/^/secret-lines /'
[ -S "$D/sandboxes/${victim.id}/net/proxy.sock" ] && echo proxy-socket-visible
echo end
`;
      let attacker: Sandbox | undefined;
      try {
        attacker = await Sandbox.create({ image: '/' }, t.client);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'IMAGE_NOT_ALLOWED', String(e));
        assert.match((e as Error).message, /--image-dir/);
      }
      if (attacker) {
        const r = await attacker.exec(['/bin/sh', '-c', program]);
        assertNoGuard(r);
        assert.match(r.stdout, /^end$/m, r.stderr);
        assert.doesNotMatch(
          r.stdout,
          /secret-lines [1-9]/,
          `a sandbox on image "/" read another sandbox's injected secret from ${t.dataDir}/state.db*`,
        );
        assert.doesNotMatch(r.stdout, /proxy-socket-visible/, 'a sandbox on image "/" reaches another sandbox\'s proxy socket');
        assert.fail(`a sandbox on image "/" ran and saw: ${r.stdout.trim().replace(/\n/g, '; ')}`);
      }
      assert.deepEqual(
        (await Sandbox.list({}, t.client)).map((s) => s.id),
        [victim.id],
        'nothing was made for the refused image',
      );
    });
  },
);

const BUSYBOX = '/bin/busybox';

/** An operator's image directory (outside the data dir) with one busybox root filesystem, `tiny`. */
function imageDir(): string {
  const dir = mkdtempSync(join(VAR_TMP, 'realm-images-'));
  chmodSync(dir, 0o755);
  const root = join(dir, 'tiny');
  for (const d of ['bin', 'etc']) mkdirSync(join(root, d), { recursive: true, mode: 0o755 });
  copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
  symlinkSync('busybox', join(root, 'bin', 'sh'));
  writeFileSync(join(root, 'etc', 'os-release'), 'NAME=tiny\n');
  return dir;
}

const refused = (e: unknown): boolean =>
  (e as { code?: string }).code === 'IMAGE_NOT_ALLOWED' && /--image-dir/.test((e as Error).message);

void test(
  'an allowed image directory works; links to / in it, or swapped in for it, are refused',
  { skip: skip ?? (existsSync(BUSYBOX) ? false : `${BUSYBOX} is missing`) },
  async () => {
    const dir = imageDir();
    try {
      await withDaemon({ imageDirs: [dir] }, async (t) => {
        const sb = await Sandbox.create({ image: join(dir, 'tiny') }, t.client);
        const r = await sb.exec(['/bin/sh', '-c', 'cat /etc/os-release; ls /usr 2>&1 | head -1']);
        assert.match(r.stdout, /NAME=tiny/);
        await sb.destroy();
        // A link in the allowed directory that leads to the host's root, or out of the directory.
        symlinkSync('/', join(dir, 'root-link'));
        symlinkSync(dirname(t.dataDir), join(dir, 'data-link'));
        for (const image of [
          join(dir, 'root-link'),
          join(dir, 'root-link', 'var'),
          join(dir, 'data-link'),
          '/',
          '/var',
          t.dataDir,
          join(dir, '..'),
        ]) {
          await assert.rejects(Sandbox.create({ image }, t.client), refused, image);
        }
        // The allowed directory itself swapped for a link to / after the daemon started.
        renameSync(dir, `${dir}.moved`);
        symlinkSync('/', dir);
        try {
          for (const image of [dir, join(dir, 'var'), join(dir, 'tmp')])
            await assert.rejects(Sandbox.create({ image }, t.client), refused, image);
        } finally {
          rmSync(dir);
          renameSync(`${dir}.moved`, dir);
        }
        assert.deepEqual(await Sandbox.list({}, t.client), [], 'nothing was made for refused images');
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

void test('the operator cannot allow /, a link to /, or a directory holding or inside the data dir', { skip }, async () => {
  const dataDir = mkdtempSync(join(VAR_TMP, 'realm-hostile-'));
  const link = join(dataDir, '..', `realm-root-link-${nonce()}`);
  symlinkSync('/', link);
  mkdirSync(join(dataDir, 'inside'));
  try {
    for (const bad of ['/', link, VAR_TMP, dataDir, join(dataDir, 'inside')]) {
      await assert.rejects(
        startTestDaemon({ dataDir, warm: 0, imageDirs: [bad] }),
        (e) => /--image-dir/.test((e as Error).message),
        bad,
      );
    }
  } finally {
    rmSync(link);
    rmSync(dataDir, { recursive: true, force: true });
  }
});
