/**
 * A throwaway PKI made with openssl for TLS tests: a CA, a server certificate for 127.0.0.1, a
 * client certificate, and a second CA that trusts none of them. ECDSA P-256 keys (quick to make).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A CA unrelated to the others (and a client certificate it signed). */
  otherCa: string;
  otherClientCert: string;
  otherClientKey: string;
  remove(): void;
}

const openssl = (args: string[]): void => {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
};

export function makePki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'realm-test-pki-'));
  const f = (name: string): string => join(dir, name);
  const key = (name: string): string => {
    openssl(['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', f(name)]);
    return f(name);
  };
  const ca = (name: string): void => {
    openssl(['req', '-x509', '-new', '-key', key(`${name}.key`), '-subj', `/CN=${name}`, '-days', '2', '-out', f(`${name}.pem`)]);
  };
  /** A leaf signed by CA `by`, with the extensions in `ext`. */
  const leaf = (name: string, by: string, ext: string): void => {
    key(`${name}.key`);
    openssl(['req', '-new', '-key', f(`${name}.key`), '-subj', `/CN=${name}`, '-out', f(`${name}.csr`)]);
    writeFileSync(f(`${name}.ext`), ext);
    openssl([
      'x509',
      '-req',
      '-in',
      f(`${name}.csr`),
      '-CA',
      f(`${by}.pem`),
      '-CAkey',
      f(`${by}.key`),
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      f(`${name}.ext`),
      '-out',
      f(`${name}.pem`),
    ]);
  };
  ca('ca');
  ca('other-ca');
  leaf('server', 'ca', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  leaf('client', 'ca', 'extendedKeyUsage=clientAuth\n');
  leaf('other-client', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  return {
    dir,
    ca: f('ca.pem'),
    serverCert: f('server.pem'),
    serverKey: f('server.key'),
    clientCert: f('client.pem'),
    clientKey: f('client.key'),
    otherCa: f('other-ca.pem'),
    otherClientCert: f('other-client.pem'),
    otherClientKey: f('other-client.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
