/** A node's id: given with --node-id, else made once and kept in the data dir. */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { RealmError } from '../util/errors.js';
import { newId } from '../engine/ids.js';

const ID_RE = /^[a-z0-9][a-z0-9-]{0,62}$/;

export function checkNodeId(id: string): string {
  if (!ID_RE.test(id))
    throw new RealmError(
      'INVALID_REQUEST',
      `node id "${id}": write lower-case letters, digits and - (at most 63, starting with a letter or digit)`,
    );
  return id;
}

export function nodeId(dataDir: string, given?: string): string {
  const path = join(dataDir, 'node-id');
  if (given) {
    checkNodeId(given);
    writeFileSync(path, `${given}\n`, { mode: 0o600 });
    return given;
  }
  if (existsSync(path)) return checkNodeId(readFileSync(path, 'utf8').trim());
  const base = hostname()
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+/, '')
    .slice(0, 40);
  const id = `${base || 'node'}-${newId('x').slice(2, 8)}`;
  writeFileSync(path, `${id}\n`, { mode: 0o600 });
  return id;
}
