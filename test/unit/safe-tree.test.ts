/**
 * realm-helper rmtree and chowntree (native/safe-tree.c, via src/util/safe-tree.ts) on real trees
 * as root: links planted at every depth, to a victim directory outside the tree and to a file in
 * it, are removed or chowned as links, never followed; a mount inside the tree is not crossed; a
 * tree deeper than the descriptors the walk holds is removed whole; a link given as the tree is
 * removed itself.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { chownTree, removeTree } from '../../src/util/safe-tree.js';

const skip =
  process.getuid?.() !== 0 ? "rmtree and chowntree run as root (the daemon's helper); run the unit tests as root" : undefined;
const base = mkdtempSync(join(tmpdir(), 'realm-safe-tree-'));
after(() => rmSync(base, { recursive: true, force: true }));

const FILES = ['f1', 'f2', 'f3', 'f4', 'f5'];

function victim(): string {
  const dir = mkdtempSync(join(base, 'victim-'));
  for (const f of FILES) writeFileSync(join(dir, f), f);
  return dir;
}

const intact = (dir: string): string[] =>
  readdirSync(dir)
    .sort()
    .map((f) => `${f}:${statSync(join(dir, f)).uid}`);
const INTACT = FILES.map((f) => `${f}:0`);

/** A tree 6 levels deep with, at every level, a file, a link to the victim dir and a link to one of its files. */
function plantedTree(v: string): string {
  const root = mkdtempSync(join(base, 'tree-'));
  let dir = root;
  for (let depth = 0; depth < 6; depth++) {
    writeFileSync(join(dir, 'own'), 'x');
    symlinkSync(v, join(dir, 'to-victim'));
    symlinkSync(join(v, 'f1'), join(dir, 'to-file'));
    symlinkSync('../../../../../../../../..', join(dir, 'to-root'));
    dir = join(dir, `d${depth}`);
    mkdirSync(dir);
  }
  return root;
}

void test('rmtree removes links at every depth and never what they point to', { skip }, async () => {
  const v = victim();
  const tree = plantedTree(v);
  await removeTree(tree);
  assert.equal(existsSync(tree), false);
  assert.deepEqual(intact(v), INTACT);
  await removeTree(tree); // gone already: nothing to do
});

void test('chowntree changes the tree and its links themselves, never what they point to', { skip }, async () => {
  const v = victim();
  const tree = plantedTree(v);
  await chownTree(tree, 4242, 4343);
  const walk = (d: string): void => {
    for (const e of readdirSync(d)) {
      const st = lstatSync(join(d, e));
      assert.equal(`${st.uid}:${st.gid}`, '4242:4343', join(d, e));
      if (st.isDirectory()) walk(join(d, e));
    }
  };
  walk(tree);
  assert.equal(statSync(tree).uid, 4242);
  assert.deepEqual(intact(v), INTACT);
  assert.equal(statSync(v).uid, 0);
});

void test('a link given as the tree is removed itself; chowntree refuses it', { skip }, async () => {
  const v = victim();
  const link = join(base, `link-${process.pid}`);
  symlinkSync(v, link);
  await assert.rejects(chownTree(link, 4242, 4242), /link is never followed/);
  await removeTree(link);
  assert.equal(existsSync(link), false);
  assert.deepEqual(intact(v), INTACT);
  assert.equal(statSync(v).uid, 0);
});

void test('a mount inside the tree is not crossed (and reported)', { skip }, async () => {
  const tree = mkdtempSync(join(base, 'mnt-'));
  const point = join(tree, 'sub', 'mnt');
  mkdirSync(point, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', point]);
  try {
    writeFileSync(join(point, 'keep'), 'x');
    writeFileSync(join(tree, 'sub', 'other'), 'x');
    await assert.rejects(chownTree(tree, 4242, 4242), /mount point/);
    assert.equal(statSync(join(point, 'keep')).uid, 0);
    await assert.rejects(removeTree(tree), /mount point/);
    assert.deepEqual(readdirSync(point), ['keep']);
    assert.equal(existsSync(join(tree, 'sub', 'other')), false);
  } finally {
    execFileSync('umount', [point]);
  }
  await removeTree(tree);
  assert.equal(existsSync(tree), false);
});

void test(
  'a tree deeper than the walk holds descriptors for is removed whole, its deepest link as a link',
  { skip },
  async () => {
    const v = victim();
    const tree = mkdtempSync(join(base, 'deep-'));
    // Deeper than PATH_MAX allows one path to name: built walking down, one directory at a time.
    execFileSync('python3', [
      '-c',
      'import os, sys\nos.chdir(sys.argv[1])\nfor _ in range(1200):\n    os.mkdir("d"); os.chdir("d")\nos.symlink(sys.argv[2], "l")\nopen("f", "w").close()',
      tree,
      v,
    ]);
    await chownTree(tree, 4242, 4242);
    await removeTree(tree);
    assert.equal(existsSync(tree), false);
    assert.deepEqual(intact(v), INTACT);
  },
);
