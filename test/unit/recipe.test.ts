/** Image recipes: validation, the cache key, the host's mirror, and what mmdebstrap's errors mean. */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { recipeHash, resolveRecipe } from '../../src/images/build/recipe.js';
import { hostMirror, securityMirror } from '../../src/images/build/mirror.js';
import { buildError } from '../../src/images/build/debian.js';
import { RealmError } from '../../src/util/errors.js';

const M = 'http://deb.debian.org/debian';

void it('the cache key is the recipe: package order and repeats do not matter, everything else does', () => {
  const base = recipeHash(resolveRecipe({ from: 'debian:bookworm', packages: ['ruby', 'python3'] }, M));
  assert.match(base, /^[0-9a-f]{64}$/);
  assert.equal(recipeHash(resolveRecipe({ from: 'debian:bookworm', packages: ['python3', 'ruby', 'ruby'] }, M)), base);
  assert.equal(recipeHash(resolveRecipe({ from: 'debian:bookworm', packages: ['python3', 'ruby'] }, `${M}/`)), base);
  for (const other of [
    resolveRecipe({ from: 'debian:trixie', packages: ['ruby', 'python3'] }, M),
    resolveRecipe({ from: 'debian:bookworm', packages: ['ruby'] }, M),
    resolveRecipe({ from: 'debian:bookworm', packages: ['ruby', 'python3'] }, 'http://mirror.example/debian'),
    resolveRecipe({ from: 'debian:bookworm', packages: ['ruby', 'python3'], files: { '/etc/x': 'y' } }, M),
    resolveRecipe({ from: 'debian:bookworm', packages: ['ruby', 'python3'], remove: ['/usr/share/x'] }, M),
  ])
    assert.notEqual(recipeHash(other), base);
});

void it('bad recipes are IMAGE_RECIPE_INVALID with the field that is wrong', () => {
  const bad: [unknown, RegExp][] = [
    [{ from: 'ubuntu:jammy' }, /from: .*debian:SUITE/],
    [{ from: 'debian:bookworm', packages: ['Python3'] }, /packages\.0/],
    [{ from: 'debian:bookworm', packages: ['a;rm -rf /'] }, /packages\.0/],
    [{ from: 'debian:bookworm', files: { 'relative/path': '' } }, /files/],
    [{ from: 'debian:bookworm', files: { '/a/../etc/passwd': '' } }, /files/],
    [{ from: 'debian:bookworm', remove: ['/usr/$(reboot)'] }, /remove/],
    [{ from: 'debian:bookworm', remove: ['/*'] }, /remove/],
    [{ from: 'debian:bookworm', remove: ['/dev/null'] }, /remove/],
    [{ from: 'debian:bookworm', remove: ['/sys'] }, /remove/],
    [{ from: 'debian:bookworm', files: { '/proc/sys/kernel/hostname': 'x' } }, /files/],
    [{ from: 'debian:bookworm', mirror: 'ftp://x' }, /mirror/],
    [{ from: 'debian:bookworm', surprise: 1 }, /surprise|unrecognized/i],
  ];
  for (const [input, message] of bad) {
    assert.throws(
      () => resolveRecipe(input, M),
      (e: RealmError) => e.code === 'IMAGE_RECIPE_INVALID' && message.test(e.message),
      JSON.stringify(input),
    );
  }
});

void it('the mirror comes from the host apt sources, in either format', () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-apt-'));
  try {
    mkdirSync(join(dir, 'sources.list.d'));
    assert.equal(hostMirror(dir), M);
    writeFileSync(
      join(dir, 'sources.list.d', 'a.sources'),
      'Types: deb\nURIs: http://local.mirror/debian/\nSuites: bookworm\nComponents: main\n\nTypes: deb\nURIs: http://local.mirror/debian-security\nSuites: bookworm-security\n',
    );
    assert.equal(hostMirror(dir), 'http://local.mirror/debian');
    assert.equal(securityMirror('http://local.mirror/debian', dir), 'http://local.mirror/debian-security');
    writeFileSync(join(dir, 'sources.list'), '# comment\ndeb [arch=amd64] http://first.mirror/debian bookworm main\n');
    assert.equal(hostMirror(dir), 'http://first.mirror/debian');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void it("mmdebstrap's failures become codes a user can act on", () => {
  assert.equal(buildError(['E: Unable to locate package nope', 'E: mmdebstrap failed']).code, 'IMAGE_PACKAGE_NOT_FOUND');
  assert.match(buildError(["E: Package 'awk' has no installation candidate"]).message, /awk/);
  assert.equal(
    buildError(["W: Failed to fetch http://x/dists/bookworm/InRelease  Temporary failure resolving 'x'"]).code,
    'ARCHIVE_UNREACHABLE',
  );
  assert.equal(buildError(['E: something else broke']).code, 'IMAGE_BUILD_FAILED');
});
