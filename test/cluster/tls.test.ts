/**
 * A cluster on an etcd that speaks TLS and wants client certificates (`--client-cert-auth`),
 * with a PKI made here: a node with the CA, its certificate and key joins and `realm node ls`
 * works; a node without a client certificate, or trusting another CA, or showing a certificate
 * of another CA, does not start — CLUSTER_UNAVAILABLE naming etcd — and leaves nothing behind.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { failedStart, startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { makePki, type TestPki } from '../helpers/pki.js';

const exec = promisify(execFile);
const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster TLS tests skipped: ${skip}`);

void describe('a cluster on etcd with TLS and client certificates', { skip }, () => {
  let pki: TestPki;
  let etcd: TestEtcd;
  let a: TestNode | undefined;

  before(async () => {
    pki = makePki();
    etcd = await startEtcd(1, {
      ca: pki.ca,
      cert: pki.serverCert,
      key: pki.serverKey,
      clientCert: pki.clientCert,
      clientKey: pki.clientKey,
    });
  });

  after(async () => {
    await a?.remove();
    await etcd?.stop();
    pki?.remove();
  });

  void it('a node with the CA, its certificate and key joins; realm node ls lists it up', async () => {
    assert.match(etcd.cluster, /^etcds:\/\/127\.0\.0\.1:\d+$/);
    a = await startNode(etcd.cluster, 'tls-a', {
      args: ['--etcd-ca', pki.ca, '--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey],
    });
    const cli = await exec(join(PACKAGE_ROOT, 'bin', 'realm'), ['node', 'ls', '--json'], {
      env: { ...process.env, REALM_URL: a.url, REALM_TOKEN: a.client.token ?? '' },
    });
    assert.deepEqual(
      (JSON.parse(cli.stdout) as { id: string; state: string }[]).map((n) => [n.id, n.state]),
      [['tls-a', 'up']],
    );
    assert.deepEqual(await a.remove(), []);
    a = undefined;
  });

  const refused = (what: string, args: () => string[], why: RegExp, cluster = (): string => etcd.cluster): void => {
    void it(`a node ${what} does not start: CLUSTER_UNAVAILABLE naming etcd, nothing left behind`, async () => {
      const r = await failedStart(cluster(), args());
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /etcd/, r.stderr);
      assert.match(r.stderr, /\[CLUSTER_UNAVAILABLE\]/, r.stderr);
      assert.match(r.stderr, why, r.stderr);
      assert.deepEqual(r.left, []);
      console.log(`# ${what}: ${r.stderr.split('\n').find((l) => l.includes('CLUSTER_UNAVAILABLE')) ?? ''}`);
    });
  };
  const tlsRefused = /TLS refused: --etcd-ca must be/;
  refused('without a client certificate', () => ['--etcd-ca', pki.ca], tlsRefused);
  refused(
    'trusting another CA',
    () => ['--etcd-ca', pki.otherCa, '--etcd-cert', pki.clientCert, '--etcd-key', pki.clientKey],
    tlsRefused,
  );
  refused(
    'showing a certificate of another CA',
    () => ['--etcd-ca', pki.ca, '--etcd-cert', pki.otherClientCert, '--etcd-key', pki.otherClientKey],
    tlsRefused,
  );
  refused(
    'speaking plain etcd:// to it',
    () => [],
    /etcd:\/\/ plain, etcds:\/\/ TLS|etcd did not answer/,
    () => etcd.cluster.replace('etcds://', 'etcd://'),
  );

  void it('etcds:// without --etcd-ca, a certificate without its key, a file not PEM, or TLS files for etcd://: usage errors', async () => {
    const noCa = await failedStart(etcd.cluster, []);
    assert.equal(noCa.code, 2, noCa.stderr);
    assert.match(noCa.stderr, /--etcd-ca/);
    assert.deepEqual(noCa.left, []);
    const noKey = await failedStart(etcd.cluster, ['--etcd-ca', pki.ca, '--etcd-cert', pki.clientCert]);
    assert.equal(noKey.code, 2, noKey.stderr);
    assert.match(noKey.stderr, /--etcd-key/);
    assert.deepEqual(noKey.left, []);
    const notPem = await failedStart(etcd.cluster, ['--etcd-ca', '/etc/hostname']);
    assert.equal(notPem.code, 2, notPem.stderr);
    assert.match(notPem.stderr, /--etcd-ca \/etc\/hostname: not a PEM file/);
    const plain = await failedStart(etcd.cluster.replace('etcds://', 'etcd://'), ['--etcd-ca', pki.ca]);
    assert.equal(plain.code, 2, plain.stderr);
    assert.match(plain.stderr, /are for etcds:\/\//);
  });
});
