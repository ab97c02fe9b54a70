/**
 * `realm serve --tls-cert FILE --tls-key FILE`: the API's TCP listener speaks TLS (https://,
 * wss://). The unix socket and the app gateway are unchanged. Both files are read, and checked
 * to be a pair, before the daemon starts anything.
 */
import { createSecureContext } from 'node:tls';
import { RealmError, errorMessage } from '../util/errors.js';
import { readPem } from '../util/pem.js';

/** PEM files: the certificate (with its intermediates after it) and its private key. */
export interface TlsFiles {
  cert: string;
  key: string;
}

export interface ListenTls {
  cert: Buffer;
  key: Buffer;
}

export function loadListenTls(files: TlsFiles): ListenTls {
  const cert = readPem('--tls-cert', files.cert);
  const key = readPem('--tls-key', files.key);
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new RealmError(
      'INVALID_REQUEST',
      `--tls-cert ${files.cert} --tls-key ${files.key}: ${errorMessage(e)} (the key must be the certificate's, both PEM)`,
    );
  }
  return { cert, key };
}
