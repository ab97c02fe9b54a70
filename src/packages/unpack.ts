/**
 * Unpack a package the way jobs unpack input archives: `tar` runs inside a sandbox as the
 * sandbox's user (no network, small limits, a deadline), so whatever the archive holds (`..`,
 * absolute paths, links, devices) reaches only what that user may touch: the one staging
 * directory bound in (through a view of its uid, as volumes are) and its own throwaway root.
 * The host then checks what landed without following anything (tree.ts). The archive was
 * already read and checked without writing (archive.ts); this is the second wall.
 */
import { chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { createSandboxSchema, execSchema } from '../engine/schemas.js';
import { errorMessage } from '../util/errors.js';
import { MANIFEST_FILE, invalid } from './manifest.js';
import { checkTree } from './tree.js';
import { log } from '../logs/log.js';

/** Where the staging directory appears in the unpacking sandbox. */
const IN_SANDBOX = '/realm-package';
/** The label of an unpacking sandbox (the reaper takes one a crash left, by its TTL). */
export const UNPACK_LABEL = 'realm.package-unpack';

/**
 * Unpack `bytes` (a scanned package) into `staging`/out, for `owner`; the unpacked tree's path.
 * `staging` must be a fresh, empty directory of root's; afterwards it is the storage uid's.
 */
export async function unpackInSandbox(
  engine: Engine,
  bytes: Buffer,
  staging: string,
  owner: string,
  expectManifest: string,
): Promise<string> {
  const storage = engine.hostIds.storage;
  mkdirSync(staging, { recursive: true, mode: 0o700 });
  writeFileSync(join(staging, 'package.realm'), bytes, { mode: 0o644 });
  const out = join(staging, 'out');
  mkdirSync(out, { mode: 0o700 });
  chownSync(out, storage, storage);
  chownSync(staging, storage, storage);
  // The namespace driver, as service replicas: its binds are what this needs.
  const opts = createSandboxSchema.parse({ image: 'host', driver: 'namespace', memory: '256m', pids: 32, cpus: 1, ttl: 600_000 });
  opts.labels = { [UNPACK_LABEL]: '1' };
  const sb = await engine.createSandbox(opts, false, owner, undefined, [
    { source: staging, target: IN_SANDBOX, readOnly: false },
  ]);
  try {
    const r = await engine.exec(
      sb.id,
      execSchema.parse({
        command: [
          'tar',
          '-x',
          '--no-same-owner',
          '--no-same-permissions',
          '-f',
          `${IN_SANDBOX}/package.realm`,
          '-C',
          `${IN_SANDBOX}/out`,
        ],
        timeout: 300_000,
        output: 64 * 1024,
      }),
    );
    if (r.verdict !== 'ok')
      throw invalid(`the package could not be unpacked (tar said: ${(r.stderr || r.stdout).trim().slice(0, 500) || r.verdict})`);
  } finally {
    await engine.destroySandbox(sb.id).catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
  }
  await checkTree(out);
  // Two tar readers that disagree (the check's and the one that unpacked) are a package to refuse.
  const landed = readFileSync(join(out, MANIFEST_FILE), { encoding: 'utf8', flag: 'r' });
  if (landed !== expectManifest)
    throw invalid(
      `the package's ${MANIFEST_FILE} unpacked differently from how it reads; make the package with \`realm package create\``,
    );
  return out;
}
