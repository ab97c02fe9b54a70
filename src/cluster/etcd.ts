/** The etcd endpoints of `realm serve --cluster etcd://HOST:PORT[,HOST:PORT…]` and the client. */
import { readFileSync } from 'node:fs';
import { Etcd3, type IOptions } from 'etcd3';
import { RealmError } from '../util/errors.js';

/** Every key realm keeps in etcd starts with this (one cluster per etcd, or per prefix). */
export const PREFIX = '/realm/v1/';

export interface EtcdTls {
  /** CA that signed the etcd members' certificates (PEM file). */
  ca: string;
  /** This node's client certificate and key (PEM files), when etcd wants client certificates. */
  cert?: string | undefined;
  key?: string | undefined;
}

/**
 * `etcd://h:p,h:p` (plain) or `etcds://h:p,…` (TLS) → the client's host URLs. A bare `h:p`
 * list is taken as etcd://.
 */
export function parseCluster(spec: string): { hosts: string[]; tls: boolean } {
  const m = /^(etcds?):\/\/(.+)$/.exec(spec.trim());
  const tls = m?.[1] === 'etcds';
  const list = (m ? (m[2] ?? '') : spec).split(',').map((h) => h.trim());
  const hosts: string[] = [];
  for (const h of list) {
    if (!/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/.test(h))
      throw new RealmError(
        'INVALID_REQUEST',
        `--cluster ${spec}: write etcd://HOST:PORT[,HOST:PORT…] (etcds:// for TLS), e.g. etcd://127.0.0.1:2379`,
      );
    hosts.push(`${tls ? 'https' : 'http'}://${h}`);
  }
  return { hosts, tls };
}

export function etcdClient(spec: string, tlsFiles?: EtcdTls): Etcd3 {
  const { hosts, tls } = parseCluster(spec);
  if (tls && !tlsFiles)
    throw new RealmError(
      'INVALID_REQUEST',
      `--cluster ${spec}: etcds:// wants --etcd-ca (and --etcd-cert/--etcd-key for client certificates)`,
    );
  const options: IOptions = { hosts, dialTimeout: 3000 };
  if (tls && tlsFiles) {
    options.credentials = {
      rootCertificate: readFileSync(tlsFiles.ca),
      ...(tlsFiles.cert ? { certChain: readFileSync(tlsFiles.cert) } : {}),
      ...(tlsFiles.key ? { privateKey: readFileSync(tlsFiles.key) } : {}),
    };
  }
  return new Etcd3(options);
}

/** `p`, or CLUSTER_UNAVAILABLE when etcd has not answered within `ms`. */
export async function answered<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new RealmError('CLUSTER_UNAVAILABLE', `etcd did not answer ${what} within ${ms} ms; is it up? (realm doctor)`),
            ),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
