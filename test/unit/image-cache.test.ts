/**
 * The image cache without the archive: a cached tarball becomes a one-layer image of the store
 * labelled with its recipe, the same recipe again is answered from the stored image's labels,
 * the cache keeps under its size, and images of an older realm's layout move into the store.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ImageBuilder } from '../../src/images/build/builder.js';
import { ImageStore } from '../../src/images/store.js';
import { recipeHash, resolveRecipe } from '../../src/images/build/recipe.js';

const MIRROR = 'http://deb.debian.org/debian';

void it('a cached tarball is stored as a labelled one-layer image; the same recipe is then instant; old tarballs are pruned', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-cache-'));
  try {
    const cacheDir = join(dir, 'cache');
    mkdirSync(cacheDir);
    const recipe = { from: 'debian:bookworm', packages: ['hello'] };
    const hash = recipeHash(resolveRecipe(recipe, MIRROR));
    // A root filesystem tarball as the builder would have cached it.
    const tree = join(dir, 'tree');
    mkdirSync(join(tree, 'etc'), { recursive: true });
    writeFileSync(join(tree, 'etc', 'debian_version'), '12.0\n');
    assert.equal(spawnSync('tar', ['-cf', join(cacheDir, `${hash}.tar`), '-C', tree, '.']).status, 0);
    // Older, unrelated tarballs that push the cache over its limit.
    for (const [i, name] of ['a', 'b'].entries()) {
      const f = join(cacheDir, `${name.repeat(64)}.tar`);
      writeFileSync(f, Buffer.alloc(4096));
      const t = new Date(Date.now() - (i + 1) * 60_000);
      utimesSync(f, t, t);
    }
    const store = new ImageStore({ dir: join(dir, 'data', 'images') });
    const b = new ImageBuilder({ dataDir: join(dir, 'data'), store, cacheDir, mirror: MIRROR, cacheBytes: 16 * 1024 });
    const phases: string[] = [];
    const first = await b.build('tiny', recipe, { onProgress: (p) => phases.push(p.phase) });
    assert.equal(first.cache, 'tarball');
    assert.deepEqual([...new Set(phases)], ['unpack', 'done']);
    assert.equal(readFileSync(join(first.rootfs, 'etc', 'debian_version'), 'utf8'), '12.0\n');
    assert.equal(first.rootfs, store.resolveRootfs('tiny'));
    assert.deepEqual(readdirSync(join(dir, 'data', 'images', 'tmp')), [], 'no staging left');
    const d = await store.inspect('tiny');
    assert.equal(d.source, 'build');
    assert.equal(d.digest, first.digest);
    assert.deepEqual(d.config.config?.Labels, {
      'org.realm.recipe': hash,
      'org.realm.base': 'debian:bookworm',
      'org.realm.packages': 'hello',
    });
    assert.equal(d.manifest.layers[0]?.size, first.bytes);
    // The layer is the cached tarball itself, hard-linked (same file system): nothing was copied.
    assert.equal(statSync(store.blobPath(d.manifest.layers[0]?.digest ?? '')).ino, statSync(join(cacheDir, `${hash}.tar`)).ino);
    // Over the limit: the least recently used went, the one just used stayed.
    assert.ok(existsSync(join(cacheDir, `${hash}.tar`)));
    assert.ok(!existsSync(join(cacheDir, `${'b'.repeat(64)}.tar`)));
    const again = await b.build('tiny', { from: 'debian:bookworm', packages: ['hello', 'hello'] });
    assert.equal(again.cache, 'installed');
    assert.equal(again.digest, first.digest);
    assert.deepEqual(
      (await b.list()).map((i) => [i.name, i.hash, i.digest]),
      [['tiny', hash, first.digest]],
    );
    // Without the cache, the same tarball in another data dir makes the very same image.
    const other = new ImageStore({ dir: join(dir, 'other', 'images') });
    const copy = await new ImageBuilder({ dataDir: join(dir, 'other'), store: other, cacheDir, mirror: MIRROR }).build(
      'tiny',
      recipe,
    );
    assert.equal(copy.digest, first.digest);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void it('recover removes what builds of dead daemons left (never a live build) and moves old-layout images into the store', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-cache-'));
  try {
    const cacheDir = join(dir, 'cache');
    const images = join(dir, 'data', 'images');
    const dead = spawnSync('true').pid; // exited: its pid names no daemon
    const gone = join(cacheDir, `.build-${'0'.repeat(12)}-${dead}-aaaa`);
    const live = join(cacheDir, `.build-${'0'.repeat(12)}-${process.pid}-bbbb`);
    const half = join(images, '.tmp-tiny-cccc');
    for (const d of [gone, live, half]) mkdirSync(join(d, 'x'), { recursive: true });
    // Built by an older realm: its tarball is still cached. One made by hand; one a sandbox still names.
    const hash = 'c'.repeat(64);
    for (const n of ['built', 'plain', 'busy']) {
      mkdirSync(join(images, n, 'rootfs', 'etc'), { recursive: true });
      writeFileSync(join(images, n, 'rootfs', 'etc', 'name'), `${n}\n`);
    }
    writeFileSync(
      join(images, 'built', 'image.json'),
      JSON.stringify({ name: 'built', hash, from: 'debian:bookworm', packages: ['hello'], bytes: 1, createdAt: 1 }),
    );
    assert.equal(spawnSync('tar', ['-cf', join(cacheDir, `${hash}.tar`), '-C', join(images, 'built', 'rootfs'), '.']).status, 0);
    const store = new ImageStore({ dir: images });
    const log: string[] = [];
    await new ImageBuilder({ dataDir: join(dir, 'data'), store, cacheDir }).recover({
      inUse: (n) => n === 'busy',
      log: (l) => log.push(l),
    });
    assert.ok(!existsSync(gone));
    assert.ok(existsSync(live));
    assert.ok(!existsSync(half));
    assert.deepEqual(
      (await store.list()).map((i) => [i.names, i.source]),
      [
        [['built:latest'], 'build'],
        [['busy:latest'], 'rootfs'],
        [['plain:latest'], 'rootfs'],
      ],
    );
    assert.deepEqual((await store.inspect('built')).config.config?.Labels, {
      'org.realm.recipe': hash,
      'org.realm.base': 'debian:bookworm',
      'org.realm.packages': 'hello',
    });
    for (const n of ['built', 'plain', 'busy'])
      assert.equal(readFileSync(join(store.resolveRootfs(n), 'etc', 'name'), 'utf8'), `${n}\n`);
    assert.equal(log.length, 3, log.join('\n'));
    // The old directories go, but the one a sandbox names (it may have it mounted) stays until a later start.
    assert.deepEqual(
      readdirSync(images).filter((f) => !['blobs', 'unpacked', 'tmp', 'index.json'].includes(f)),
      ['busy'],
    );
    await new ImageBuilder({ dataDir: join(dir, 'data'), store, cacheDir }).recover({
      inUse: () => false,
      log: (l) => log.push(l),
    });
    assert.ok(!existsSync(join(images, 'busy')));
    assert.equal(log.length, 3, 'moved once');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
