/**
 * The image cache without the archive: a cached tarball is unpacked into place atomically, the
 * same recipe again is answered from the installed image, and the cache keeps under its size.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { ImageBuilder } from '../../src/images/build/builder.js';
import { recipeHash, resolveRecipe } from '../../src/images/build/recipe.js';

const MIRROR = 'http://deb.debian.org/debian';

void it('a cached tarball is installed atomically; the same recipe is then instant; old tarballs are pruned', async () => {
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
    const b = new ImageBuilder({ dataDir: join(dir, 'data'), cacheDir, mirror: MIRROR, cacheBytes: 16 * 1024 });
    const phases: string[] = [];
    const first = await b.build('tiny', recipe, { onProgress: (p) => phases.push(p.phase) });
    assert.equal(first.cache, 'tarball');
    assert.deepEqual(phases, ['unpack', 'done']);
    assert.equal(readFileSync(join(first.rootfs, 'etc', 'debian_version'), 'utf8'), '12.0\n');
    assert.deepEqual(readdirSync(join(dir, 'data', 'images')), ['tiny'], 'no temporary directory left');
    assert.equal((JSON.parse(readFileSync(join(dir, 'data', 'images', 'tiny', 'image.json'), 'utf8')) as { hash: string }).hash, hash);
    // Over the limit: the least recently used went, the one just used stayed.
    assert.ok(existsSync(join(cacheDir, `${hash}.tar`)));
    assert.ok(!existsSync(join(cacheDir, `${'b'.repeat(64)}.tar`)));
    const again = await b.build('tiny', { from: 'debian:bookworm', packages: ['hello', 'hello'] });
    assert.equal(again.cache, 'installed');
    assert.deepEqual(b.list().map((i) => [i.name, i.hash]), [['tiny', hash]]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void it('recover removes what builds of dead daemons left, never a live build', () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-cache-'));
  try {
    const cacheDir = join(dir, 'cache');
    const dead = spawnSync('true').pid; // exited: its pid names no daemon
    const gone = join(cacheDir, `.build-${'0'.repeat(12)}-${dead}-aaaa`);
    const live = join(cacheDir, `.build-${'0'.repeat(12)}-${process.pid}-bbbb`);
    const half = join(dir, 'data', 'images', '.tmp-tiny-cccc');
    for (const d of [gone, live, half]) mkdirSync(join(d, 'x'), { recursive: true });
    new ImageBuilder({ dataDir: join(dir, 'data'), cacheDir }).recover();
    assert.ok(!existsSync(gone));
    assert.ok(existsSync(live));
    assert.ok(!existsSync(half));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
