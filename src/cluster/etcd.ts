/** The etcd endpoints of `realm serve --cluster etcd://HOST:PORT[,HOST:PORT…]` and the client. */
import { Etcd3, type IOptions, type Watcher } from 'etcd3';
import { RealmError, errorMessage } from '../util/errors.js';
import { readPem as pem } from '../util/pem.js';

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

/**
 * The client's options, every flag checked and every PEM file read (a usage error naming the
 * flag, before the daemon starts anything; grpc would only fail later, obscurely).
 */
export function etcdOptions(spec: string, tlsFiles?: EtcdTls): IOptions {
  const { hosts, tls } = parseCluster(spec);
  if (tls && !tlsFiles)
    throw new RealmError(
      'INVALID_REQUEST',
      `--cluster ${spec}: etcds:// wants --etcd-ca (and --etcd-cert/--etcd-key for client certificates)`,
    );
  if (!tls && tlsFiles)
    throw new RealmError('INVALID_REQUEST', `--cluster ${spec}: --etcd-ca/--etcd-cert/--etcd-key are for etcds:// (TLS)`);
  const options: IOptions = { hosts, dialTimeout: 3000 };
  if (tlsFiles) {
    if (!tlsFiles.cert !== !tlsFiles.key)
      throw new RealmError(
        'INVALID_REQUEST',
        '--etcd-cert and --etcd-key go together: give both (a client certificate and its key) or neither',
      );
    options.credentials = {
      rootCertificate: pem('--etcd-ca', tlsFiles.ca),
      ...(tlsFiles.cert && tlsFiles.key
        ? { certChain: pem('--etcd-cert', tlsFiles.cert), privateKey: pem('--etcd-key', tlsFiles.key) }
        : {}),
    };
  }
  return options;
}

export function etcdClient(spec: string, tlsFiles?: EtcdTls): Etcd3 {
  return new Etcd3(etcdOptions(spec, tlsFiles));
}

/**
 * `p`, or CLUSTER_UNAVAILABLE when etcd has not answered within `ms` or the client failed (no
 * connection, TLS refused either way): the message names etcd and what to check.
 */
export async function answered<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p.catch((e: unknown) => {
        throw e instanceof RealmError ? e : unavailable(what, e);
      }),
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

/** A client error as CLUSTER_UNAVAILABLE, with the likely cause when it is one of TLS. */
function unavailable(what: string, e: unknown): RealmError {
  // grpc's "14 UNAVAILABLE: No connection established. Last error: …" ends with an empty note.
  const msg = errorMessage(e)
    .replace(/\s*Resolution note:\s*$/, '')
    .replace(/\s+/g, ' ')
    .replace(/[\s.]+$/, '');
  const hint = /certificate|SSL|TLS|alert|handshake/i.test(msg)
    ? "TLS refused: --etcd-ca must be the CA of etcd's server certificate, and --etcd-cert/--etcd-key a client certificate etcd's --trusted-ca-file signed"
    : 'is it up, and does it speak what --cluster says (etcd:// plain, etcds:// TLS)?';
  return new RealmError('CLUSTER_UNAVAILABLE', `etcd failed ${what}: ${msg}; ${hint}`);
}

/**
 * Put `value` at `key` only if the key is as this node last read it (`mod`: its revision then;
 * undefined: it must not exist): the new revision, or undefined when another node changed it.
 */
export async function casPut(
  etcd: Etcd3,
  key: string,
  value: string,
  mod: string | undefined,
  ms: number,
  what: string,
): Promise<string | undefined> {
  const txn = await answered(
    (mod ? etcd.if(key, 'Mod', '==', mod) : etcd.if(key, 'Create', '==', 0)).then(etcd.put(key).value(value)).commit(),
    ms,
    what,
  );
  return txn.succeeded ? txn.header.revision : undefined;
}

/**
 * Delete `key` only if it is as this node last read it (`mod`: its revision then; undefined: this
 * node never saw it there). `deleted`; `gone` when no one holds it any more (another node removed
 * it: what was wanted); `changed` when another node wrote it since (a removal must not beat a
 * replacement it never saw).
 */
export async function casDelete(
  etcd: Etcd3,
  key: string,
  mod: string | undefined,
  ms: number,
  what: string,
): Promise<'deleted' | 'gone' | 'changed'> {
  const txn = await answered(
    (mod ? etcd.if(key, 'Mod', '==', mod) : etcd.if(key, 'Create', '==', 0))
      .then(etcd.delete().key(key))
      .else(etcd.get(key))
      .commit(),
    ms,
    what,
  );
  if (txn.succeeded) return mod ? 'deleted' : 'gone';
  return txn.responses[0]?.response_range?.kvs.length ? 'changed' : 'gone';
}

/**
 * Cancel a watch, waiting at most `ms`. etcd3 waits for etcd's word that a watch is cancelled,
 * and for one etcd already ended (it compacted the history the watch was to resume from, after a
 * long cut) that word never comes: a plain cancel() would hold the daemon's shutdown for ever.
 */
export async function cancelWatch(watcher: Watcher | undefined, ms = 1000): Promise<void> {
  if (!watcher) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    watcher.cancel().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    }),
  ]);
  clearTimeout(timer);
}
