/**
 * The certificate authority of a daemon's proxies, for secrets injected into HTTPS: a proxy that
 * must add a header to requests for a host ends the sandbox's TLS itself with a certificate for
 * that host signed by this CA (which only such sandboxes trust), and speaks TLS to the real host,
 * verifying it as any client would. The CA's key stays in the data dir, never in a sandbox.
 * ECDSA P-256; the CA lasts ten years, host certificates a week (made on demand, kept in memory).
 */
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type SecureContext, createSecureContext } from 'node:tls';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);
type CryptoKey = webcrypto.CryptoKey;

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
const DAY = 86_400_000;

function pem(label: string, der: ArrayBuffer): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${label}-----\n${b64.trimEnd()}\n-----END ${label}-----\n`;
}

function derOf(text: string): Buffer {
  return Buffer.from(text.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

const serial = (): string => `01${randomBytes(15).toString('hex')}`;

export class ProxyCa {
  private readonly contexts = new Map<string, Promise<SecureContext>>();

  private constructor(
    /** The CA certificate, PEM: what a sandbox must trust. */
    readonly certPem: string,
    private readonly cert: x509.X509Certificate,
    private readonly key: CryptoKey,
  ) {}

  /** Load the CA kept in `dir`, making it the first time. */
  static async open(dir: string, name = 'realm proxy CA'): Promise<ProxyCa> {
    const certFile = join(dir, 'ca.crt');
    const keyFile = join(dir, 'ca.key');
    if (!existsSync(certFile) || !existsSync(keyFile)) {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
      const cert = await x509.X509CertificateGenerator.createSelfSigned({
        serialNumber: serial(),
        name: `CN=${name}`,
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + 3650 * DAY),
        keys,
        signingAlgorithm: ALG,
        extensions: [
          new x509.BasicConstraintsExtension(true, 0, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
          await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        ],
      });
      // Key first, certificate last: a certificate on disk always has its key.
      writeFileSync(`${keyFile}.tmp`, pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)), {
        mode: 0o600,
      });
      renameSync(`${keyFile}.tmp`, keyFile);
      writeFileSync(`${certFile}.tmp`, cert.toString('pem') + '\n', { mode: 0o644 });
      renameSync(`${certFile}.tmp`, certFile);
    }
    const certPem = readFileSync(certFile, 'utf8');
    const key = await webcrypto.subtle.importKey('pkcs8', derOf(readFileSync(keyFile, 'utf8')), ALG, false, ['sign']);
    return new ProxyCa(certPem, new x509.X509Certificate(certPem), key);
  }

  /** A certificate and key for `host`, PEM. */
  async issue(host: string): Promise<{ cert: string; key: string }> {
    const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
    const ip = /^[\d.]+$|:/.test(host);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${host.replace(/[,=+<>#;"\\]/g, '')}`,
      issuer: this.cert.subject,
      notBefore: new Date(Date.now() - DAY),
      notAfter: new Date(Date.now() + 7 * DAY),
      signingKey: this.key,
      publicKey: keys.publicKey,
      signingAlgorithm: ALG,
      extensions: [
        new x509.SubjectAlternativeNameExtension([{ type: ip ? 'ip' : 'dns', value: host }]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.BasicConstraintsExtension(false),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert),
      ],
    });
    return {
      cert: cert.toString('pem') + '\n',
      key: pem('PRIVATE KEY', await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)),
    };
  }

  /** A TLS server context presenting a certificate for `host` (made once, then reused). */
  context(host: string): Promise<SecureContext> {
    let c = this.contexts.get(host);
    if (!c) {
      c = this.issue(host).then(({ cert, key }) => createSecureContext({ cert: cert + this.certPem, key }));
      c.catch(() => this.contexts.delete(host));
      this.contexts.set(host, c);
    }
    return c;
  }
}
