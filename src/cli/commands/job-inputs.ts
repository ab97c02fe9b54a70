/** `realm job submit`'s --input (local files, uploaded to the blob store) and --use-artifact, as spec inputs. */
import { statSync } from 'node:fs';
import type { Client } from '@realm/sdk';
import { RealmError } from '../../util/errors.js';

export interface ExtraInput {
  source?: string;
  artifact?: string;
  dest: string;
  unpack?: boolean;
}

/** `DEST=PATH` (a DEST ending in / unpacks the archive there) and `JOB:NAME[=DEST]`. */
export async function uploadInputs(c: Client, files: string[], artifacts: string[]): Promise<ExtraInput[]> {
  const out: ExtraInput[] = [];
  for (const item of files) {
    const i = item.indexOf('=');
    if (i <= 0)
      throw new RealmError(
        'INVALID_REQUEST',
        `--input ${item}: write DEST=PATH, e.g. src/=project.tar.gz or data.csv=./data.csv`,
      );
    const dest = item.slice(0, i);
    const path = item.slice(i + 1);
    if (!statSync(path, { throwIfNoEntry: false })?.isFile())
      throw new RealmError('INVALID_REQUEST', `--input ${item}: ${path} is not a file`);
    const blob = await c.blobs.put(path);
    const unpack = dest.endsWith('/');
    out.push({
      source: `cas:${blob.digest}`,
      dest: unpack ? dest.replace(/\/+$/, '') || '.' : dest,
      ...(unpack ? { unpack } : {}),
    });
  }
  for (const item of artifacts) {
    const m = /^([^=]+?:[^=]+)(?:=(.+))?$/.exec(item);
    if (!m?.[1]) throw new RealmError('INVALID_REQUEST', `--use-artifact ${item}: write JOB:NAME or JOB:NAME=DEST`);
    out.push({ artifact: m[1], dest: m[2] ?? m[1].slice(m[1].lastIndexOf(':') + 1) });
  }
  return out;
}
