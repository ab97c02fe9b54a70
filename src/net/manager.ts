/**
 * Network policy per sandbox: for an allow-list sandbox, its filtering proxy (started before the
 * sandbox, stopped with it) and the log of what it refused.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { rootCertificates } from 'node:tls';
import type { SandboxRecord } from '../store/store.js';
import type { Destinations } from './addresses.js';
import { ProxyCa } from './ca.js';
import { type Policy, parseRule } from './policy.js';
import { type Denied, type Injection, SandboxProxy } from './proxy.js';
import { log } from '../logs/log.js';

/** Port of the forwarder inside the sandbox (its own loopback). */
export const PROXY_PORT = 3128;
/** Where the proxy's socket appears inside the sandbox. */
export const PROXY_SOCKET_INSIDE = '/.realm/proxy.sock';
const KEEP_DENIED = 1000;

/** Inside a sandbox with injections: the system CAs plus the proxy CA, and the proxy CA alone. */
const CA_BUNDLE_INSIDE = '/.realm/net/ca-bundle.crt';
const CA_INSIDE = '/.realm/net/realm-ca.crt';
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';

/** The environment of a sandbox that goes out through its proxy. */
export function proxyEnv(rec: Pick<SandboxRecord, 'inject'>): Record<string, string> {
  const url = `http://127.0.0.1:${PROXY_PORT}`;
  // Injecting into HTTPS means the proxy ends TLS: point the usual tools at a bundle that trusts it.
  const tls: Record<string, string> = rec.inject?.length
    ? {
        SSL_CERT_FILE: CA_BUNDLE_INSIDE,
        CURL_CA_BUNDLE: CA_BUNDLE_INSIDE,
        REQUESTS_CA_BUNDLE: CA_BUNDLE_INSIDE,
        GIT_SSL_CAINFO: CA_BUNDLE_INSIDE,
        NODE_EXTRA_CA_CERTS: CA_INSIDE,
      }
    : {};
  return {
    ...tls,
    HTTP_PROXY: url,
    HTTPS_PROXY: url,
    http_proxy: url,
    https_proxy: url,
    ALL_PROXY: url,
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
    // git over ssh (ssh ignores the variables above): a CONNECT tunnel through the same proxy.
    GIT_SSH_COMMAND: 'ssh -o ProxyCommand="/.realm/init connect %h %p"',
  };
}

function policyOf(rec: SandboxRecord): Policy {
  const rules = (list: string[] | undefined) => (list ?? []).map((r) => parseRule(r)).filter((r) => r !== null);
  return { allow: rules(rec.allow), deny: rules(rec.deny) };
}

export class Networks {
  private readonly proxies = new Map<string, SandboxProxy>();
  private readonly denied = new Map<string, Denied[]>();

  private ca: Promise<ProxyCa> | undefined;
  private upstreamCa: string[] | undefined;

  constructor(
    private readonly pinned: Record<string, string>,
    private readonly destinations: Destinations,
    /** Where the proxy CA is kept; extra CAs (PEM file) that real hosts may be signed by. */
    private readonly tlsConfig: { caDir: string; upstreamCaFile?: string | undefined },
  ) {}

  /** The proxy CA and the CAs real hosts are checked against, made or read on first need. */
  private async tls(): Promise<{ ca: ProxyCa; upstreamCa: string[] }> {
    this.ca ??= ProxyCa.open(this.tlsConfig.caDir);
    const file = this.tlsConfig.upstreamCaFile;
    this.upstreamCa ??= [
      ...rootCertificates,
      ...(file ? [readFileSync(file, 'utf8')] : []),
      ...(existsSync(SYSTEM_BUNDLE) ? [readFileSync(SYSTEM_BUNDLE, 'utf8')] : []),
    ];
    return { ca: await this.ca, upstreamCa: this.upstreamCa };
  }

  /** True when this sandbox goes out through a proxy. */
  static filtered(rec: Pick<SandboxRecord, 'allow'>): boolean {
    return (rec.allow?.length ?? 0) > 0;
  }

  /** Start the sandbox's proxy; the socket (a host path, the sandbox's uid's alone) is what the driver binds in. */
  async start(rec: SandboxRecord, stateDir: string, uid: number): Promise<string> {
    await this.stop(rec.id);
    const socket = join(stateDir, 'proxy.sock');
    const inject: Injection[] = (rec.inject ?? []).flatMap((i) => {
      const rule = parseRule(i.host);
      return rule ? [{ rule, header: i.header, value: i.value }] : [];
    });
    let tls;
    if (inject.length) {
      tls = await this.tls();
      writeFileSync(join(stateDir, 'realm-ca.crt'), tls.ca.certPem, { mode: 0o644 });
      const system = existsSync(SYSTEM_BUNDLE) ? readFileSync(SYSTEM_BUNDLE, 'utf8') : '';
      writeFileSync(join(stateDir, 'ca-bundle.crt'), `${system}\n${tls.ca.certPem}`, { mode: 0o644 });
    }
    const proxy = new SandboxProxy(socket, {
      policy: policyOf(rec),
      inject,
      tls,
      pinned: this.pinned,
      destinations: this.destinations,
      onDenied: (d) => {
        const list = this.denied.get(rec.id) ?? [];
        list.push(d);
        if (list.length > KEEP_DENIED) list.shift();
        this.denied.set(rec.id, list);
        log.warn(`sandbox ${rec.id} denied ${d.host}:${d.port} (${d.reason})`, {
          sandboxId: rec.id,
          host: d.host,
          port: d.port,
          reason: d.reason,
        });
      },
    });
    await proxy.listen(uid);
    this.proxies.set(rec.id, proxy);
    return socket;
  }

  async stop(id: string): Promise<void> {
    const p = this.proxies.get(id);
    this.proxies.delete(id);
    await p?.close();
  }

  forget(id: string): void {
    this.denied.delete(id);
  }

  deniedOf(id: string): Denied[] {
    return [...(this.denied.get(id) ?? [])];
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.proxies.keys()].map((id) => this.stop(id)));
  }
}
