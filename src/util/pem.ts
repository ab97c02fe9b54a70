/** PEM files named on the command line (certificates, keys, CAs), read before anything starts. */
import { readFileSync } from 'node:fs';
import { RealmError, errorMessage } from './errors.js';

/** A PEM file's bytes, or a usage error naming the flag (TLS libraries would only fail later, obscurely). */
export function readPem(flag: string, file: string): Buffer {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new RealmError('INVALID_REQUEST', `${flag} ${file}: ${errorMessage(e)}`);
  }
  if (!bytes.includes('-----BEGIN '))
    throw new RealmError('INVALID_REQUEST', `${flag} ${file}: not a PEM file (want -----BEGIN …-----)`);
  return bytes;
}
