/**
 * The owner key on the owner's machine: an ed25519 private key in PKCS#8 PEM, mode 0600, at
 * $REALM_CONFIG/owner.key, else $XDG_CONFIG_HOME/realm/owner.key, else ~/.config/realm/owner.key.
 * A key file others can read is refused, as ssh refuses one: whoever reads it can sign for you.
 */
import { createPrivateKey, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { RealmError } from '../util/errors.js';
import { fingerprint, generateOwnerKey, publicKeyText } from './keys.js';

export interface OwnerKey {
  path: string;
  privateKey: KeyObject;
  /** `realm-ed25519:BASE64`. */
  publicKey: string;
  fingerprint: string;
}

/** Where the owner key lives by default. */

function described(path: string, privateKey: KeyObject): OwnerKey {
  const publicKey = publicKeyText(privateKey);
  return { path, privateKey, publicKey, fingerprint: fingerprint(publicKey) };
}

/** Make a new key at `path`; an existing one is kept (and KEY_EXISTS thrown) so a key is never lost by mistake. */
export function createKeyFile(path: string): OwnerKey {
  if (existsSync(path))
    throw new RealmError(
      'KEY_EXISTS',
      `${path} already holds an owner key; \`realm key show\` prints it (move it away to make another)`,
    );
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const { privateKey } = generateOwnerKey();
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  // wx (O_EXCL): two inits at once cannot both write; the mode is set at creation, never wider.
  writeFileSync(path, pem, { flag: 'wx', mode: 0o600 });
  chmodSync(path, 0o600);
  return described(path, privateKey);
}

/** The key at `path`, or KEY_NOT_FOUND / KEY_INVALID saying what to do. */
export function loadKeyFile(path: string): OwnerKey {
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new RealmError('KEY_NOT_FOUND', `no owner key at ${path}; make one with \`realm key init\``);
  if (st.mode & 0o077)
    throw new RealmError(
      'KEY_INVALID',
      `${path} can be read by others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 ${path}`,
    );
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(readFileSync(path));
  } catch (e) {
    throw new RealmError('KEY_INVALID', `${path} is not a private key (${(e as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== 'ed25519')
    throw new RealmError('KEY_INVALID', `${path} is a ${privateKey.asymmetricKeyType ?? 'unknown'} key; an owner key is ed25519`);
  return described(path, privateKey);
}
