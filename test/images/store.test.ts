/** The image store without a daemon: imports, export round trips, layer semantics and bad input. */
import assert from 'node:assert/strict';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { ImageStore } from '../../src/images/store.js';
import { importArchive, importLayoutDir, importRootfsDir, importRootfsTar } from '../../src/images/import.js';
import { exportImage } from '../../src/images/export.js';
import { RealmError } from '../../src/util/errors.js';
import { BUSYBOX, busyboxLayers, digestOf, dockerSave, makeImage, makeTar, ociArchive } from '../helpers/oci.js';

let dir: string;
let store: ImageStore;

/** Everything of the store on disk, to prove a failure changed nothing. */
function snapshot(): string {
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d).sort() : []);
  const idx = existsSync(join(store.dir, 'index.json')) ? readFileSync(join(store.dir, 'index.json'), 'utf8') : '';
  return JSON.stringify({
    idx,
    blobs: list(join(store.dir, 'blobs', 'sha256')),
    unpacked: list(join(store.dir, 'unpacked')),
    tmp: list(store.tmpDir),
  });
}

async function rejects(fn: () => Promise<unknown>, code: string, re?: RegExp): Promise<void> {
  const before = snapshot();
  await assert.rejects(fn(), (e: unknown) => {
    assert.ok(e instanceof RealmError, `a RealmError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
  assert.ok(snapshot() === before, `the store is unchanged and no temp dir is left: ${snapshot().slice(-300)}`);
}

const fromBuf = (b: Buffer): Readable => Readable.from([b]);

void describe('image store', () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'realm-images-'));
    store = new ImageStore({ dir: join(dir, 'images'), maxLayerBytes: 64 * 1024 * 1024 });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  void it('imports an OCI archive: layers in order, whiteouts, opaque dirs, links, safe modes', async () => {
    const img = makeImage(await busyboxLayers(), { gzip: true });
    const [got] = await importArchive(store, fromBuf(await ociArchive(img, 'test/busybox:1')));
    assert.deepEqual(got, { names: ['test/busybox:1'], digest: img.manifestDigest });
    const root = store.resolveRootfs('test/busybox:1');
    assert.equal(root, store.resolveRootfs(img.manifestDigest));
    const bb = statSync(join(root, 'bin/busybox'));
    assert.equal(bb.mode & 0o7777, 0o755, 'setuid dropped');
    assert.equal(lstatSync(join(root, 'bin/sh')).isSymbolicLink(), true);
    assert.ok(!existsSync(join(root, 'etc/gone')), 'whiteout applied');
    assert.ok(!existsSync(join(root, 'nowhere')), 'a whiteout makes no directory');
    assert.ok(!existsSync(join(root, 'opq/old')), 'opaque dir hides the lower layer');
    assert.equal(readFileSync(join(root, 'opq/new'), 'utf8'), 'kept\n', 'opaque keeps its own layer');
    assert.equal(statSync(join(root, 'etc/secret')).mode & 0o777, 0o604, 'others may read');
    assert.equal(statSync(join(root, 'etc/hard')).ino, statSync(join(root, 'etc/secret')).ino, 'hard link');
    assert.ok(!existsSync(join(root, 'dev/null')), 'device nodes skipped');
    assert.equal(readFileSync(join(root, 'usr/hello'), 'utf8'), 'hello from layer 3\n');
    assert.equal(statSync(root).mode & 0o777, 0o755);
    const [row] = await store.list();
    assert.equal(row?.layers, 3);
    assert.ok(row && row.size > 0 && row.unpackedSize > 0);
  });

  void it('exports an OCI archive that imports back to the same digest; dedups blobs', async () => {
    const chunks: Buffer[] = [];
    for await (const c of await exportImage(store, 'test/busybox:1')) chunks.push(c as Buffer);
    const blobsBefore = readdirSync(join(store.dir, 'blobs/sha256')).length;
    const [again] = await importArchive(store, fromBuf(Buffer.concat(chunks)), { name: 'copy:2' });
    assert.equal(again?.digest, (await store.inspect('test/busybox:1')).digest);
    assert.equal(readdirSync(join(store.dir, 'blobs/sha256')).length, blobsBefore, 'no blob stored twice');
    assert.deepEqual((await store.list()).find((i) => i.digest === again?.digest)?.names, ['copy:2', 'test/busybox:1']);
  });

  void it("imports a gzip'd docker save tarball and an OCI layout directory", async () => {
    const layers = [await makeTar([{ name: 'a', content: 'docker\n' }])];
    const [d] = await importArchive(store, fromBuf(gzipSync(await dockerSave(layers, 'saved:latest'))));
    assert.equal(readFileSync(join(store.resolveRootfs('saved'), 'a'), 'utf8'), 'docker\n');
    assert.deepEqual(d?.names, ['saved:latest']);
    const img = makeImage([await makeTar([{ name: 'b', content: 'layout\n' }])]);
    const layout = join(dir, 'layout');
    mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifestDigest, size: img.manifest.length },
        ],
      }),
    );
    for (const b of [{ digest: img.manifestDigest, data: img.manifest }, img.config, ...img.layers])
      writeFileSync(join(layout, 'blobs/sha256', b.digest.slice(7)), b.data);
    await importLayoutDir(store, layout, { name: 'layout:1' });
    assert.equal(readFileSync(join(store.resolveRootfs('layout:1'), 'b'), 'utf8'), 'layout\n');
  });

  void it("adds one-layer images from a rootfs tarball and from a directory (the builder's way in)", async () => {
    const tar = await makeTar([
      { name: './', type: 'directory' },
      { name: './etc/', type: 'directory' },
      { name: './etc/issue', content: 'built\n' },
    ]);
    const r = await importRootfsTar(store, 'built:1', fromBuf(tar));
    assert.equal(readFileSync(join(store.resolveRootfs('built:1'), 'etc/issue'), 'utf8'), 'built\n');
    assert.equal((await store.inspect('built:1')).config.rootfs?.diff_ids[0], digestOf(tar));
    const src = join(dir, 'srcroot');
    mkdirSync(join(src, 'bin'), { recursive: true });
    writeFileSync(join(src, 'bin/tool'), '#!/bin/sh\n', { mode: 0o700 });
    symlinkSync('tool', join(src, 'bin/alias'));
    await importRootfsDir(store, 'fromdir', src);
    const root = store.resolveRootfs('fromdir:latest');
    assert.equal(statSync(join(root, 'bin/tool')).mode & 0o777, 0o705);
    assert.equal(lstatSync(join(root, 'bin/alias')).isSymbolicLink(), true);
    assert.ok(r.digest.startsWith('sha256:'));
  });

  void it('refuses corrupt and truncated archives, leaving the store as it was', async () => {
    const good = await ociArchive(makeImage([await makeTar([{ name: 'x', content: 'x'.repeat(5000) }])]), 'trunc:1');
    await rejects(async () => importArchive(store, fromBuf(good.subarray(0, 3000))), 'IMAGE_INVALID', /truncated|tar/);
    await rejects(
      async () => importArchive(store, fromBuf(Buffer.from('this is not a tar archive at all'.repeat(40)))),
      'IMAGE_INVALID',
    );
    await rejects(async () => importArchive(store, fromBuf(Buffer.from([0x1f, 0x8b, 1, 2, 3, 4]))), 'IMAGE_INVALID');
    await rejects(
      async () => importArchive(store, fromBuf(await makeTar([{ name: 'hello', content: 'x' }]))),
      'IMAGE_INVALID',
      /neither index.json/,
    );
  });

  void it('refuses a blob whose digest does not match, and a layer that does not match its diff_id', async () => {
    const img = makeImage([await makeTar([{ name: 'x', content: 'one' }])]);
    const other = await makeTar([{ name: 'x', content: 'two' }]);
    const lying = { ...img, layers: [{ ...img.layers[0], data: other }] };
    await rejects(async () => importArchive(store, fromBuf(await ociArchive(lying, 'lie:1'))), 'IMAGE_INVALID', /digest/);
    const wrongDiff = makeImage([await makeTar([{ name: 'x', content: 'one' }])], {
      config: { rootfs: { type: 'layers', diff_ids: [digestOf(other)] } },
    });
    await rejects(
      async () => importArchive(store, fromBuf(await ociArchive(wrongDiff, 'diff:1'))),
      'IMAGE_INVALID',
      /config says/,
    );
  });

  void it('refuses layer entries that leave the root or write through links', async () => {
    const cases: [string, Buffer[]][] = [
      ['dotdot', [await makeTar([{ name: 'a/../../escape', content: 'x' }])]],
      ['absolute', [await makeTar([{ name: '/etc/passwd', content: 'x' }])]],
      [
        'symlink same layer',
        [
          await makeTar([
            { name: 'l', type: 'symlink', linkname: '/tmp' },
            { name: 'l/owned', content: 'x' },
          ]),
        ],
      ],
      [
        'symlink earlier layer',
        [
          await makeTar([{ name: 'l', type: 'symlink', linkname: '../../..' }]),
          await makeTar([{ name: 'l/owned', content: 'x' }]),
        ],
      ],
      ['hard link out', [await makeTar([{ name: 'h', type: 'link', linkname: '../../etc/shadow' }])]],
      [
        'whiteout through link',
        [await makeTar([{ name: 'l', type: 'symlink', linkname: '/' }]), await makeTar([{ name: 'l/.wh.etc' }])],
      ],
    ];
    for (const [what, layers] of cases) {
      await rejects(
        async () => importArchive(store, fromBuf(await ociArchive(makeImage(layers), `esc/${what.replace(/ /g, '-')}:1`))),
        'IMAGE_INVALID',
        undefined,
      );
    }
    assert.ok(!existsSync('/tmp/owned'));
  });

  void it('refuses absurd sizes and unknown media types', async () => {
    const small = new ImageStore({ dir: store.dir, maxLayerBytes: 4096 });
    const big = makeImage([await makeTar([{ name: 'big', content: Buffer.alloc(64 * 1024) }])]);
    await rejects(async () => importArchive(small, fromBuf(await ociArchive(big, 'big:1'))), 'IMAGE_TOO_LARGE');
    const img = makeImage([await makeTar([{ name: 'x', content: 'x' }])]);
    const m = JSON.parse(img.manifest.toString()) as { layers: { mediaType: string }[]; config: { size: number } };
    m.layers[0].mediaType = 'application/vnd.example.unknown';
    const odd = { ...img, manifest: Buffer.from(JSON.stringify(m)), manifestDigest: digestOf(Buffer.from(JSON.stringify(m))) };
    await rejects(
      async () => importArchive(store, fromBuf(await ociArchive(odd, 'odd:1'))),
      'IMAGE_INVALID',
      /unknown layer media type/,
    );
    const m2 = JSON.parse(img.manifest.toString()) as { config: { size: number } };
    m2.config.size = 1e12;
    const huge = { ...img, manifest: Buffer.from(JSON.stringify(m2)), manifestDigest: digestOf(Buffer.from(JSON.stringify(m2))) };
    await rejects(async () => importArchive(store, fromBuf(await ociArchive(huge, 'huge:1'))), 'IMAGE_TOO_LARGE');
  });

  void it('removes names, then prunes what nothing uses', async () => {
    const blobs = readdirSync(join(store.dir, 'blobs/sha256')).length;
    await store.remove('saved');
    assert.throws(
      () => store.resolveRootfs('saved'),
      (e: unknown) => e instanceof RealmError && e.code === 'IMAGE_NOT_FOUND',
    );
    const r = await store.prune();
    assert.ok(r.blobs >= 3, `pruned ${r.blobs} blobs`);
    assert.equal(readdirSync(join(store.dir, 'blobs/sha256')).length, blobs - r.blobs);
    assert.ok(existsSync(join(store.resolveRootfs('test/busybox:1'), 'bin/busybox')), 'named images stay');
    await assert.rejects(store.remove('nope:1'), (e: unknown) => e instanceof RealmError && e.code === 'IMAGE_NOT_FOUND');
    assert.ok(existsSync(BUSYBOX));
  });
});
