/** applyLayer directly: tar formats as GNU tar writes them, chunk boundaries, replacing entries, modes and bad whiteouts. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { applyLayer, newUnpackState, type UnpackState } from '../../src/images/unpack.js';
import { RealmError } from '../../src/util/errors.js';
import { makeTar, type Entry } from '../helpers/oci.js';

let dir: string;
let n = 0;

/** A fresh root inside its own directory, beside a file that must survive whatever the layer does. */
function freshRoot(): { st: UnpackState; root: string; sibling: string } {
  const d = join(dir, `case-${n++}`);
  const root = join(d, 'rootfs');
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const sibling = join(d, 'keep');
  writeFileSync(sibling, 'keep');
  return { st: newUnpackState(root), root, sibling };
}

function layerFile(data: Buffer): string {
  const f = join(dir, `layer-${n++}.tar`);
  writeFileSync(f, data);
  return f;
}

const apply = async (st: UnpackState, entries: Entry[]): Promise<void> =>
  void (await applyLayer(st, layerFile(await makeTar(entries)), 1 << 30));

async function refused(st: UnpackState, data: Buffer, re: RegExp): Promise<void> {
  await assert.rejects(applyLayer(st, layerFile(data), 1 << 30), (e: unknown) => {
    assert.ok(e instanceof RealmError, `a RealmError, got ${String(e)}`);
    assert.equal(e.code, 'IMAGE_INVALID', e.message);
    assert.match(e.message, re);
    return true;
  });
}

void describe('layer unpacking', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'realm-unpack-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it("reads GNU and pax tarballs with long names and files larger than a read chunk; diff_id is the tar's sha256", async () => {
    const src = join(dir, 'src');
    const deep = join(src, 'd'.repeat(90), 'e'.repeat(90));
    mkdirSync(deep, { recursive: true });
    const big = Buffer.alloc(3 * 1024 * 1024 + 777);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff;
    writeFileSync(join(deep, `${'f'.repeat(120)}.bin`), big);
    writeFileSync(join(src, 'small'), 'small\n');
    chmodSync(join(src, 'small'), 0o664);
    symlinkSync(`${'d'.repeat(90)}/${'e'.repeat(90)}/${'f'.repeat(120)}.bin`, join(src, 'to-big'));
    for (const format of ['gnu', 'pax']) {
      const tar = join(dir, `${format}.tar`);
      assert.equal(spawnSync('tar', [`--format=${format}`, '-cf', tar, '-C', src, '.']).status, 0);
      for (const gzip of [false, true]) {
        const { st, root } = freshRoot();
        const raw = readFileSync(tar);
        const r = await applyLayer(st, gzip ? layerFile(gzipSync(raw)) : tar, 1 << 30);
        assert.equal(r.diffId, `sha256:${createHash('sha256').update(raw).digest('hex')}`, `${format} gzip=${gzip}`);
        assert.ok(readFileSync(join(root, 'to-big')).equals(big), `${format}: the big file through its long symlink`);
        assert.equal(readFileSync(join(root, 'small'), 'utf8'), 'small\n');
        assert.equal(statSync(join(root, 'small')).mode & 0o7777, 0o664, 'group write kept whatever the umask');
        assert.equal(r.fileBytes, big.length + 6);
      }
    }
  });

  void it('replaces what lower layers left without writing through links; normalizes modes; skips devices', async () => {
    const { st, root } = freshRoot();
    const outside = join(dir, `outside-${n++}`);
    writeFileSync(outside, 'outside');
    await apply(st, [
      { name: 'f', content: 'lower' },
      { name: 'h', type: 'link', linkname: 'f' },
      { name: 's', type: 'symlink', linkname: outside },
      { name: 'was-file', content: 'x' },
      { name: 'was-dir/inner', content: 'x' },
    ]);
    await apply(st, [
      { name: 'h', content: 'upper' },
      { name: 's', content: 'not through the link' },
      { name: 'was-file/', type: 'directory', mode: 0o700 },
      { name: 'was-file/x', content: 'x' },
      { name: 'was-dir', type: 'symlink', linkname: 'f' },
      { name: 'suid', content: '#!/bin/sh\n', mode: 0o4755 },
      { name: 'private', content: 'p', mode: 0o600 },
      { name: 'null', type: 'character-device' },
    ]);
    assert.equal(readFileSync(join(root, 'f'), 'utf8'), 'lower', 'the hard link was broken, not written through');
    assert.equal(readFileSync(join(root, 'h'), 'utf8'), 'upper');
    assert.equal(readFileSync(outside, 'utf8'), 'outside', 'the symlink was replaced, not followed');
    assert.equal(lstatSync(join(root, 's')).isFile(), true);
    assert.equal(statSync(join(root, 'was-file')).mode & 0o7777, 0o705);
    assert.equal(readlinkSync(join(root, 'was-dir')), 'f');
    assert.equal(statSync(join(root, 'suid')).mode & 0o7777, 0o755);
    assert.equal(statSync(join(root, 'private')).mode & 0o7777, 0o604);
    assert.ok(!existsSync(join(root, 'null')));
  });

  void it("refuses whiteouts that name no entry (the directory itself or the root's parent)", async () => {
    for (const name of ['.wh...', '.wh..', '.wh.', 'a/.wh...', 'a/.wh.']) {
      const { st, root, sibling } = freshRoot();
      await apply(st, [{ name: 'a/b', content: 'x' }]);
      await refused(st, await makeTar([{ name }]), /whiteout .* names no entry/);
      assert.ok(existsSync(sibling), `${name}: the root's sibling is still there`);
      assert.ok(existsSync(join(root, 'a/b')), `${name}: the root is as it was`);
    }
  });

  void it('refuses layers cut off inside an entry or a header', async () => {
    const tar = await makeTar([
      { name: 'x', content: 'y'.repeat(5000) },
      { name: 'z', content: 'z' },
    ]);
    for (const cut of [700, 1024 + 100, 512 * 11 + 300]) {
      const { st } = freshRoot();
      await refused(st, tar.subarray(0, cut), /not a valid tar archive/);
    }
    const { st } = freshRoot();
    const garbage = Buffer.from(tar);
    garbage[20] = 0x41;
    await refused(st, garbage, /not a valid tar archive: Invalid tar header/);
  });
});
