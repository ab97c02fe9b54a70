/**
 * realm-helper idmap-mount (native/idmap-mount.c, via src/util/idmap-mount.ts) as root: files a
 * storage uid owns on disk appear owned by a sandbox uid through the mount, and what the sandbox
 * uid creates there lands as the storage uid; other uids cannot create or chown anything there;
 * links in either path are refused with nothing mounted; bubblewrap, run as the sandbox uid,
 * binds the mount into its user namespace and sees the files as its uid 1000's.
 */
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BWRAP, HELPER, mountTmpfs } from '../../src/drivers/shared/helper.js';
import { Forkserver } from '../../src/drivers/shared/forkserver.js';
import { detachMount, idmapMount, mountsUnder } from '../../src/util/idmap-mount.js';
import { runCommand } from '../../src/util/run-command.js';
import { minimalBwrapArgs } from '../helpers/bwrap.js';

const STORE = 600000;
const BOX = 600123;
const OTHER = 600124;

const skip = process.getuid?.() !== 0 ? 'idmapped mounts are made by the root helper; run the unit tests as root' : undefined;
if (skip) console.log(`skipped: ${skip}`);
const base = mkdtempSync(join(tmpdir(), 'realm-idmap-'));
chmodSync(base, 0o711); // the sandbox uids pass through to the mount points
after(async () => {
  for (const p of mountsUnder(base)) await detachMount(p).catch(() => undefined);
  if (mountsUnder(base).length === 0) rmSync(base, { recursive: true, force: true });
});

/** A volume as stored: a directory, a file and an open (0777) directory of the storage uid, and a file of root's. */
function volume(name: string): string {
  const src = join(base, name);
  mkdirSync(join(src, 'open'), { recursive: true });
  writeFileSync(join(src, 'file'), 'data');
  writeFileSync(join(src, 'roots'), 'root');
  for (const p of [src, join(src, 'open'), join(src, 'file')]) chownSync(p, STORE, STORE);
  chmodSync(src, 0o755);
  chmodSync(join(src, 'open'), 0o777);
  return src;
}

function point(name: string): string {
  const p = join(base, name);
  mkdirSync(p);
  return p;
}

/** Run a command as uid:gid `uid` (no supplementary groups) through the helper's spawn. */
function as(uid: number, ...cmd: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return runCommand(HELPER, ['spawn', '--uid', String(uid), '--gid', String(uid), '--', ...cmd], {
    env: {},
    timeoutMs: 10_000,
  }).then((r) => ({ code: r.code, out: r.stdout, err: r.stderr }));
}

const owner = (p: string): string => `${lstatSync(p).uid}:${lstatSync(p).gid}`;

void test('ids FROM on disk appear as TO through the mount; what TO creates is stored as FROM', { skip }, async () => {
  const src = volume('vol');
  const mnt = point('mnt');
  await idmapMount(src, mnt, STORE, BOX);
  assert.equal(owner(mnt), `${BOX}:${BOX}`);
  assert.equal(owner(join(mnt, 'file')), `${BOX}:${BOX}`);
  assert.equal(owner(join(src, 'file')), `${STORE}:${STORE}`);
  assert.equal(owner(join(mnt, 'roots')), '0:0'); // root stays root
  const r = await as(BOX, '/usr/bin/touch', join(mnt, 'made'));
  assert.equal(r.code, 0, r.err);
  assert.equal(owner(join(src, 'made')), `${STORE}:${STORE}`);
  assert.equal(owner(join(mnt, 'made')), `${BOX}:${BOX}`);
  await detachMount(mnt);
  assert.deepEqual(mountsUnder(base), []);
});

void test('another uid cannot write through the mount, and nothing can be chowned to an unmapped id', { skip }, async () => {
  const src = join(base, 'vol');
  const mnt = join(base, 'mnt');
  await idmapMount(src, mnt, STORE, BOX);
  // Its files are "other" to it: 0644 is read-only, the 0755 root refuses it.
  const write = await as(OTHER, '/bin/sh', '-c', `echo x >> ${join(mnt, 'file')}`);
  assert.notEqual(write.code, 0);
  assert.match(write.err, /Permission denied/);
  // Creating needs the creator's id mapped: refused (EOVERFLOW) before the mode bits are even read, in 0755 and 0777 dirs alike.
  for (const dir of [mnt, join(mnt, 'open')]) {
    const r = await as(OTHER, '/usr/bin/touch', join(dir, 'intruder'));
    assert.notEqual(r.code, 0);
    assert.match(r.err, /Value too large|Permission denied/);
    assert.equal(existsSync(join(src, 'intruder')), false);
  }
  // Root stays root: it may create there (as root on disk) and give a file to TO (stored as
  // FROM), as gVisor's gofer does; no file can be given an unmapped id.
  writeFileSync(join(mnt, 'by-root'), 'x');
  assert.equal(owner(join(src, 'by-root')), '0:0');
  chownSync(join(mnt, 'by-root'), BOX, BOX);
  assert.equal(owner(join(src, 'by-root')), `${STORE}:${STORE}`);
  rmSync(join(src, 'by-root'));
  assert.throws(() => chownSync(join(mnt, 'file'), OTHER, OTHER), { code: 'EOVERFLOW' });
  assert.equal(owner(join(src, 'file')), `${STORE}:${STORE}`);
  await detachMount(mnt);
});

void test('ro: the same view, read-only', { skip }, async () => {
  const mnt = point('mnt-ro');
  await idmapMount(join(base, 'vol'), mnt, STORE, BOX, { readOnly: true });
  assert.equal(owner(join(mnt, 'file')), `${BOX}:${BOX}`);
  const r = await as(BOX, '/usr/bin/touch', join(mnt, 'made-ro'));
  assert.notEqual(r.code, 0);
  assert.match(r.err, /Read-only file system/);
  await detachMount(mnt);
});

void test(
  'a symbolic link anywhere in SRC or DST, a non-empty DST or id 0 is refused, and nothing is mounted',
  { skip },
  async () => {
    const src = join(base, 'vol');
    const mnt = join(base, 'mnt');
    symlinkSync(src, join(base, 'link-to-vol'));
    symlinkSync(base, join(base, 'link-to-base'));
    symlinkSync(mnt, join(base, 'link-to-mnt'));
    const cases: [string, string, number, RegExp][] = [
      [join(base, 'link-to-vol'), mnt, STORE, /SRC .*symbolic link/],
      [join(base, 'link-to-base', 'vol'), mnt, STORE, /SRC .*symbolic link/],
      [src, join(base, 'link-to-mnt'), STORE, /DST .*symbolic link/],
      [src, join(base, 'link-to-base', 'mnt'), STORE, /DST .*symbolic link/],
      [src, src, STORE, /DST .*not an empty directory/],
      [src, 'mnt', STORE, /not an absolute path/],
      [join(src, 'file'), mnt, STORE, /not a directory/],
      [src, mnt, 0, /not a uid above 0/],
    ];
    for (const [s, d, from, message] of cases) await assert.rejects(idmapMount(s, d, from, BOX), message, `${s} -> ${d}`);
    const r = await runCommand(HELPER, ['idmap-mount', src, mnt, '0', String(BOX)], { env: {} });
    assert.equal(r.code, 125);
    assert.match(r.stderr, /FROM 0: not an id/);
    assert.deepEqual(mountsUnder(base), []);
  },
);

void test("through the fork server (the daemon's way)", { skip }, async () => {
  const fs = await Forkserver.start(HELPER, join(base, 'fs.sock'));
  try {
    const run = (a: string[]): Promise<void> => fs.run(a);
    const mnt = point('mnt-fs');
    await idmapMount(join(base, 'vol'), mnt, STORE, BOX, { run });
    assert.equal(owner(join(mnt, 'file')), `${BOX}:${BOX}`);
    await detachMount(mnt, run);
    assert.deepEqual(mountsUnder(base), []);
  } finally {
    await fs.close();
  }
});

void test('mountsUnder decodes escaped names and lists the deepest first', { skip }, async () => {
  const outer = point('with space\tand tab');
  await mountTmpfs(outer, 1 << 20, 0, 0);
  const inner = join(outer, 'inner');
  mkdirSync(inner);
  await mountTmpfs(inner, 1 << 20, 0, 0);
  await mountTmpfs(inner, 1 << 20, 0, 0); // stacked: listed twice
  assert.deepEqual(mountsUnder(base), [inner, inner, outer]);
  assert.deepEqual(mountsUnder(`${base}/`), [inner, inner, outer]);
  assert.deepEqual(mountsUnder(outer), [inner, inner]);
  for (const p of mountsUnder(base)) await detachMount(p);
  assert.deepEqual(mountsUnder(base), []);
});

void test(
  "bubblewrap as the sandbox uid binds the mount: inside, the files are uid 1000's, and its files land as the storage uid",
  { skip: skip ?? (existsSync(BWRAP) ? undefined : 'no bubblewrap') },
  async () => {
    const src = join(base, 'vol');
    const mnt = join(base, 'mnt');
    await idmapMount(src, mnt, STORE, BOX);
    const script =
      'stat -c %u:%g /v/file /v/roots; echo hi > /v/from-bwrap; stat -c %u:%g /v/from-bwrap; grep " /v " /proc/self/mountinfo';
    const r = await as(BOX, BWRAP, ...minimalBwrapArgs(), '--bind', mnt, '/v', '--', '/bin/sh', '-c', script);
    assert.equal(r.code, 0, r.err);
    const [file, roots, made, mountLine] = r.out.trim().split('\n');
    assert.equal(file, '1000:1000');
    assert.equal(roots, '65534:65534');
    assert.equal(made, '1000:1000');
    assert.match(mountLine ?? '', /idmapped/);
    assert.equal(owner(join(src, 'from-bwrap')), `${STORE}:${STORE}`);
    assert.equal(statSync(join(src, 'from-bwrap')).size, 3);
    await detachMount(mnt);
    assert.deepEqual(mountsUnder(base), []);
  },
);
