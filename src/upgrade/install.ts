/**
 * Installing a release beside the ones there: the tarball is unpacked into a fresh directory under
 * `<root>/versions/`, checked (it has realm's CLI, and that CLI starts: `--version`), and only
 * then renamed to `versions/N`. A refusal at any step removes what it unpacked: nothing
 * half-installed stays. `current` is a symlink swapped by rename(2), so it names one whole tree
 * or the other, never neither.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { join } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { RealmError, errorMessage } from '../util/errors.js';

const run = promisify(execFile);

/** Where the CLI is in a release tree, as `npm pack` and the built tree both lay it out. */
export const MAIN_IN_TREE = join('dist', 'src', 'cli', 'main.js');
const PREFLIGHT_MS = 60_000;

export function versionsDir(root: string): string {
  return join(root, 'versions');
}

export function currentLink(root: string): string {
  return join(root, 'current');
}

/**
 * Unpack `tarball` (gzip'd tar, hashed on the way: it must be `digest`) into `<root>/versions/N`
 * and check it starts. `modulesFrom`: the running tree, whose node_modules a release without its
 * own is given (a package made by `npm pack` has none). Returns the tree.
 */
export async function installRelease(o: {
  root: string;
  version: number;
  digest: string;
  tarball: Readable;
  modulesFrom: string;
}): Promise<string> {
  const dir = versionsDir(o.root);
  const final = join(dir, String(o.version));
  if (existsSync(final)) rmSync(final, { recursive: true, force: true }); // a tree left by a try that was rolled back
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const tmp = mkdtempSync(join(dir, `.${o.version}.partial-`));
  try {
    await unpack(o.tarball, tmp, o.digest);
    // `npm pack` puts everything under package/; a tarball of the built tree has it at the top.
    const top = readdirSync(tmp);
    const tree = top.length === 1 && top[0] === 'package' ? join(tmp, 'package') : tmp;
    if (!existsSync(join(tree, MAIN_IN_TREE)))
      throw new RealmError(
        'UPGRADE_PACKAGE_INVALID',
        `the package has no ${MAIN_IN_TREE}: pack the built tree (npm run build first), as \`npm pack\` of realm does`,
      );
    if (!existsSync(join(tree, 'node_modules')))
      symlinkSync(realpathSync(join(o.modulesFrom, 'node_modules')), join(tree, 'node_modules'));
    await preflight(join(tree, MAIN_IN_TREE));
    if (tree !== tmp) {
      renameSync(tree, final);
      rmSync(tmp, { recursive: true, force: true });
    } else renameSync(tmp, final);
    return final;
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** `tar -xz` from the stream, its bytes hashed on the way; a wrong digest fails it (and the caller removes `into`). */
async function unpack(tarball: Readable, into: string, digest: string): Promise<void> {
  const hash = createHash('sha256');
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  // GNU tar keeps entries inside `into` (it strips leading / and refuses ..), and as root makes
  // the files root's rather than whatever uid the packer had.
  const tar = spawn('tar', ['-xzf', '-', '-C', into, '--no-same-owner', '--delay-directory-restore'], {
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  let err = '';
  tar.stderr.on('data', (d: Buffer) => (err += d.toString()).slice(-2000));
  const exited = new Promise<number | null>((r) => tar.once('close', (code) => r(code)));
  try {
    await pipeline(tarball, tee, tar.stdin);
  } catch (e) {
    tar.kill('SIGKILL');
    await exited;
    throw new RealmError('UPGRADE_PACKAGE_INVALID', `the package could not be read whole: ${errorMessage(e)}`);
  }
  const code = await exited;
  const got = `sha256:${hash.digest('hex')}`;
  if (got !== digest)
    throw new RealmError(
      'UPGRADE_SIGNATURE',
      `the package's bytes are ${got}, not ${digest} as signed: it was changed after signing; sign the package you mean to install with \`realm upgrade\``,
    );
  if (code !== 0)
    throw new RealmError(
      'UPGRADE_PACKAGE_INVALID',
      `the package is not a gzip'd tar (tar: ${err.trim().slice(0, 400)}); make it with npm pack or tar -czf`,
    );
}

/** The new CLI must start and say its version before anything is switched to it. */
async function preflight(main: string): Promise<void> {
  try {
    await run(process.execPath, [main, '--version'], { timeout: PREFLIGHT_MS, env: { ...process.env, NODE_OPTIONS: '' } });
  } catch (e) {
    const x = e as { stderr?: string; message: string };
    throw new RealmError(
      'UPGRADE_PACKAGE_INVALID',
      `the release's CLI does not start (\`${MAIN_IN_TREE} --version\`: ${(x.stderr || x.message).trim().slice(0, 400)}); nothing was switched: fix and repack it`,
    );
  }
}

/** What `current` points to, or null when there is none. */
export function readCurrent(root: string): string | null {
  try {
    return readlinkSync(currentLink(root));
  } catch {
    return null;
  }
}

/** Point `current` at `target` (null: remove it) in one rename. */
export function swapCurrent(root: string, target: string | null): void {
  const link = currentLink(root);
  if (target === null) {
    rmSync(link, { force: true });
    return;
  }
  const tmp = `${link}.${process.pid}.tmp`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}
