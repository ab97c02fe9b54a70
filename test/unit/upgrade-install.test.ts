/**
 * Installing a release (upgrade/install.ts) with small tarballs made here: the built-tree and
 * `npm pack` layouts both install to versions/N with the running tree's node_modules; bytes that
 * are not the signed digest, a tarball that is not one, a tree without realm's CLI and a CLI that
 * does not start are each refused with nothing left under versions/; `current` is swapped whole.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { RealmError } from '../../src/util/errors.js';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { installRelease, readCurrent, swapCurrent } from '../../src/upgrade/install.js';

const exec = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'realm-test-install-'));

/** A tarball of a tree whose CLI prints `say` (or exits 1), under `package/` when `packed`. */
async function tarball(
  name: string,
  o: { say?: string; packed?: boolean; noMain?: boolean } = {},
): Promise<{ file: string; digest: string }> {
  const tree = join(work, name, o.packed ? 'package' : '');
  mkdirSync(join(tree, 'dist', 'src', 'cli'), { recursive: true });
  if (!o.noMain)
    writeFileSync(
      join(tree, 'dist', 'src', 'cli', 'main.js'),
      o.say === undefined ? 'process.exit(1);\n' : `console.log(${JSON.stringify(o.say)});\n`,
    );
  writeFileSync(join(tree, 'package.json'), '{}');
  const file = join(work, `${name}.tgz`);
  await exec('tar', ['-C', join(work, name), '-czf', file, '.']);
  return { file, digest: `sha256:${createHash('sha256').update(readFileSync(file)).digest('hex')}` };
}

const install = (root: string, version: number, t: { file: string; digest: string }, digest = t.digest) =>
  installRelease({ root, version, digest, tarball: createReadStream(t.file), modulesFrom: PACKAGE_ROOT });

const refused = (code: string) => (e: unknown) => e instanceof RealmError && e.code === code;
const left = (root: string): string[] => readdirSync(join(root, 'versions')).sort();

void describe('installing a release', () => {
  after(() => rmSync(work, { recursive: true, force: true }));

  void it('installs the built tree and an npm pack, each with node_modules, beside each other', async () => {
    const root = join(work, 'root-ok');
    const tree = await install(root, 1, await tarball('built', { say: '0.1.1' }));
    assert.equal(tree, join(root, 'versions', '1'));
    assert.equal((await exec(process.execPath, [join(tree, 'dist/src/cli/main.js'), '--version'])).stdout, '0.1.1\n');
    assert.equal(readlinkSync(join(tree, 'node_modules')), join(PACKAGE_ROOT, 'node_modules'));
    const packed = await install(root, 2, await tarball('packed', { say: '0.1.2', packed: true }));
    assert.ok(existsSync(join(packed, 'package.json')));
    assert.deepEqual(left(root), ['1', '2']);
    assert.equal(readCurrent(root), null);
    swapCurrent(root, join('versions', '1'));
    swapCurrent(root, join('versions', '2'));
    assert.equal(readCurrent(root), join('versions', '2'));
    swapCurrent(root, null);
    assert.equal(readCurrent(root), null);
  });

  void it('refuses bytes that are not the signed digest, and broken packages, leaving nothing', async () => {
    const root = join(work, 'root-bad');
    const good = await tarball('good', { say: '1' });
    const other = await tarball('other', { say: '2' });
    // The package's bytes are another's than the statement signed.
    await assert.rejects(install(root, 1, other, good.digest), refused('UPGRADE_SIGNATURE'));
    const junk = join(work, 'junk.tgz');
    writeFileSync(junk, 'not a tarball');
    const junkDigest = `sha256:${createHash('sha256').update('not a tarball').digest('hex')}`;
    await assert.rejects(install(root, 1, { file: junk, digest: junkDigest }), refused('UPGRADE_PACKAGE_INVALID'));
    await assert.rejects(install(root, 1, await tarball('nomain', { noMain: true })), refused('UPGRADE_PACKAGE_INVALID'));
    await assert.rejects(install(root, 1, await tarball('nostart')), refused('UPGRADE_PACKAGE_INVALID'));
    assert.deepEqual(left(root), []);
  });
});
