/**
 * Hostile packages: a `.realm` file is untrusted input. One with `..` entries, absolute paths,
 * symbolic or hard links, device files, fifos or a huge declared size is refused with
 * PACKAGE_INVALID before anything is unpacked (the first wall: archive.ts reads it without
 * writing), and nothing is deployed or left behind. And should an archive pass that check, the
 * unpacking itself (tar inside a sandbox as its user, then a host-side check that follows nothing)
 * writes nothing outside its staging directory and refuses what landed (the second wall).
 *
 * Run once (test/hostile/jobs/, as the job path's archives): the unpacking sandbox is the node's
 * default driver's, and what is tested is the package path's own handling.
 *
 * Guards: an archive is not a program. Every path it names points into a scratch directory this
 * test made (/var/tmp/realm-hostile-pkg-*), so even an archive unpacked on the host could write
 * nowhere else.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { RealmError } from '@realm/sdk';
import { pack, type Header } from 'tar-stream';
import { unpackInSandbox } from '../../../src/packages/unpack.js';
import { RealmError as DaemonError } from '../../../src/util/errors.js';
import { removeTree } from '../../../src/util/safe-tree.js';
import { type TestDaemon, namespaceSkipReason, removeTestDirs, startTestDaemon } from '../../helpers/daemon.js';
import { assertContained, nonce } from '../common.js';

const skip = await namespaceSkipReason();

const MANIFEST = `name = "evil"
version = "1"
[service]
image = "host"
command = "true"
port = 8000
[[mounts]]
kind = "static"
path = "/srv/x"
source = "x"
`;

type Entry = Partial<Header> & { name: string; body?: string };

/** A tar made of exactly these entries, names and link targets as given (nothing normalised). */
async function hostileTar(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) {
    const { body, ...header } = e;
    await new Promise<void>((resolve, reject) =>
      p.entry({ mode: e.type === 'directory' ? 0o777 : 0o666, ...header }, body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Names under `dir` (recursively when `deep`) that contain `marker`. */
function namesWith(dir: string, marker: string, deep: boolean): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { recursive: deep }).map(String);
  } catch {
    return [];
  }
  return entries.filter((e) => e.includes(marker)).map((e) => join(dir, e));
}

void describe('hostile packages', { skip }, () => {
  let t: TestDaemon;
  let scratch: string;
  before(async () => {
    t = await startTestDaemon({ warm: 0 });
    scratch = `/var/tmp/realm-hostile-pkg-${nonce()}`;
    mkdirSync(scratch, { mode: 0o777 });
    // Writable by anyone: only the walls keep an unpacking tar from writing here.
    chmodSync(scratch, 0o777);
  });
  after(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  /**
   * The entries of a package that try to leave it, each aimed at the scratch dir (and `victim` in
   * it), in groups: a link with what is then written through it.
   */
  const escapes = (n: string, victim: string): Entry[][] => {
    const up = '../'.repeat(16);
    return [
      [{ name: `${up}${scratch.slice(1)}/dotdot-${n}`, body: 'escaped\n' }],
      [{ name: `../../dotdot-home-${n}`, body: 'escaped\n' }],
      [{ name: `${up}${dirname(t.dataDir).slice(1)}/dotdot-data-${n}`, body: 'escaped\n' }],
      [{ name: `${scratch}/abs-${n}`, body: 'escaped\n' }],
      [{ name: victim, body: 'overwritten by an absolute entry\n' }],
      [
        { name: `x/esc-${n}`, type: 'symlink', linkname: scratch },
        { name: `x/esc-${n}/through-${n}`, body: 'escaped\n' },
      ],
      [
        { name: `x/rel-${n}`, type: 'symlink', linkname: `${up}${scratch.slice(1)}` },
        { name: `x/rel-${n}/rel-through-${n}`, body: 'escaped\n' },
      ],
      [
        { name: `x/vict-${n}`, type: 'symlink', linkname: victim },
        { name: `x/vict-${n}`, body: 'overwritten through a file symlink\n' },
      ],
      [
        { name: `x/hard-${n}`, type: 'link', linkname: victim },
        { name: `x/hard-${n}`, body: 'overwritten through a hard link\n' },
      ],
      [{ name: `x/null-${n}`, type: 'character-device', devmajor: 1, devminor: 3 }],
      [{ name: `x/disk-${n}`, type: 'block-device', devmajor: 8, devminor: 0 }],
      [{ name: `x/fifo-${n}`, type: 'fifo' }],
    ];
  };

  /** Nothing named with `n` anywhere on the host but `victim`, which is as it was. */
  const untouched = (n: string, victim: string): void => {
    assert.equal(readFileSync(victim, 'utf8'), `untouched ${n}\n`, 'the host file was written');
    assert.deepEqual(
      readdirSync(scratch).filter((e) => e.includes(n)),
      [`victim-${n}`],
      'something appeared on the host',
    );
    const found = [
      ...namesWith(t.dataDir, n, true),
      ...[dirname(t.dataDir), '/', '/tmp', '/var/tmp', '/home', homedir(), process.cwd()].flatMap((d) => namesWith(d, n, false)),
    ].filter((p) => p !== victim);
    assert.deepEqual(found, [], 'a package entry landed on the host');
  };

  void it('each escaping entry, link, device or huge size is refused before anything is unpacked; nothing deployed or left', async () => {
    const n = nonce();
    const victim = join(scratch, `victim-${n}`);
    writeFileSync(victim, `untouched ${n}\n`);
    chmodSync(victim, 0o666);
    const base: Entry[] = [
      { name: 'realm-package.toml', body: MANIFEST },
      { name: 'x/', type: 'directory' },
      { name: 'x/ok.txt', body: 'inside\n' },
    ];
    const volumes = readdirSync(join(t.dataDir, 'volumes')).sort();
    const cases: Entry[][] = [
      ...escapes(n, victim),
      // A file that claims more than a package may unpack to (its bytes never come).
      [{ name: 'x/huge', size: 2 * 1024 ** 3 }],
    ];
    for (const extra of cases) {
      const what = `${extra[0]?.type ?? 'file'} ${extra[0]?.name ?? ''}`;
      let tar: Buffer;
      if (extra[0]?.size) {
        // A header that claims 2 GiB, then the end: tar-stream will not write it, so it is made here.
        const ok = await hostileTar(base);
        const header = (await hostileTar([{ name: 'x/huge', body: '' }])).subarray(0, 512);
        header.write((2 * 1024 ** 3).toString(8).padStart(11, '0'), 124, 'ascii');
        header.fill(' ', 148, 156);
        let sum = 0;
        for (const b of header) sum += b;
        header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
        tar = Buffer.concat([ok.subarray(0, ok.length - 1024), header, Buffer.alloc(1024 * 1024)]);
      } else {
        tar = await hostileTar([...base, ...extra]);
      }
      for (const bytes of [tar, gzipSync(tar)]) {
        await assert.rejects(
          t.client.packages.deploy(bytes),
          (e: unknown) => e instanceof RealmError && e.code === 'PACKAGE_INVALID',
          `${what} was not refused`,
        );
      }
    }
    await assert.rejects(
      t.client.services.get('evil'),
      (e: unknown) => e instanceof RealmError && e.code === 'SERVICE_NOT_FOUND',
    );
    assert.deepEqual(readdirSync(join(t.dataDir, 'volumes')).sort(), volumes);
    const staging = join(t.dataDir, 'packages', 'staging');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], []);
    assert.deepEqual(readdirSync(join(t.dataDir, 'packages', 'trees')), []);
    untouched(n, victim);
    await assertContained(t);
  });

  void it('the second wall: an archive that passed no check, unpacked in the sandbox, writes nothing outside and is refused', async () => {
    const n = nonce();
    const victim = join(scratch, `victim-${n}`);
    writeFileSync(victim, `untouched ${n}\n`);
    chmodSync(victim, 0o666);
    const tar = await hostileTar([
      { name: 'realm-package.toml', body: MANIFEST },
      { name: 'x/', type: 'directory' },
      { name: 'x/ok.txt', body: 'inside\n' },
      ...escapes(n, victim).flat(),
    ]);
    const staging = join(t.dataDir, 'packages', 'staging', `hostile-${n}`);
    try {
      await assert.rejects(unpackInSandbox(t.daemon.engine, tar, staging, 'uid:0', MANIFEST), (e: unknown) => {
        // tar in the sandbox failing on what it could not write, or the host's check refusing what landed.
        assert.ok(e instanceof DaemonError && e.code === 'PACKAGE_INVALID', String(e));
        assert.match(e.message, /could not be unpacked|other than a file or directory/);
        return true;
      });
    } finally {
      await removeTree(staging);
    }
    untouched(n, victim);
    await assertContained(t);
  });
});
