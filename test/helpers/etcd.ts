/**
 * A real etcd (Debian's etcd-server) on loopback ports of its own, in a temp dir, for cluster
 * tests; stopped and removed by `stop()`. One member, or several forming one cluster.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './port.js';

/** PEM files for etcd's client side: its server certificate and the CA it trusts for client certificates. */
export interface EtcdTlsFiles {
  /** The CA that signed `cert` and the clients' certificates. */
  ca: string;
  cert: string;
  key: string;
  /** A client certificate and key signed by `ca`, for the health check. */
  clientCert: string;
  clientKey: string;
}

export interface TestEtcd {
  /** `etcd://127.0.0.1:P[,…]` (`etcds://` with TLS) as realm serve --cluster takes it. */
  cluster: string;
  members: { name: string; client: number; peer: number; proc: ChildProcess }[];
  /** SIGSTOP / SIGCONT a member (an etcd that stops answering without closing its sockets). */
  pause(i?: number): void;
  resume(i?: number): void;
  /** kill -9 member `i` (its data dir stays), and start it again on the same ports and data, healthy. */
  kill(i: number): Promise<void>;
  restart(i: number): Promise<void>;
  /** The index of the member that leads now (plain etcd only), read from a live member's status. */
  leader(): Promise<number>;
  stop(): Promise<void>;
}

export function etcdSkipReason(): string | undefined {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'etcd is not installed (Debian: apt-get install etcd-server; npm test installs it)';
  }
}

/** etcd's /health answer over https with a client certificate. */
function healthyTls(port: number, tls: EtcdTlsFiles): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/health',
        ca: readFileSync(tls.ca),
        cert: readFileSync(tls.clientCert),
        key: readFileSync(tls.clientKey),
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
        res.on('error', () => resolve(false));
      },
    );
    req.on('error', () => resolve(false));
    req.end();
  });
}

/**
 * `size` members on loopback. With `tls`, clients speak TLS and must show a certificate signed
 * by `tls.ca` (`--client-cert-auth`); peers stay plain (loopback, one host).
 */
export async function startEtcd(size = 1, tls?: EtcdTlsFiles): Promise<TestEtcd> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-test-etcd-'));
  const plan = [];
  for (let i = 0; i < size; i++) plan.push({ name: `e${i}`, client: await freePort(), peer: await freePort() });
  const initial = plan.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const scheme = tls ? 'https' : 'http';
  const tlsArgs = tls ? ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth'] : [];
  const launch = (m: { name: string; client: number; peer: number }): ChildProcess =>
    spawn(
      'etcd',
      [
        '--name',
        m.name,
        '--data-dir',
        join(dir, m.name),
        '--listen-client-urls',
        `${scheme}://127.0.0.1:${m.client}`,
        '--advertise-client-urls',
        `${scheme}://127.0.0.1:${m.client}`,
        ...tlsArgs,
        '--listen-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-advertise-peer-urls',
        `http://127.0.0.1:${m.peer}`,
        '--initial-cluster',
        initial,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        `realm-test-${process.pid}`,
      ],
      { stdio: 'ignore', env: { ...process.env, ETCD_UNSUPPORTED_ARCH: '' } },
    );
  const members = plan.map((m) => ({ ...m, proc: launch(m) }));
  const cluster = `${tls ? 'etcds' : 'etcd'}://${members.map((m) => `127.0.0.1:${m.client}`).join(',')}`;
  const killed = (m: { proc: ChildProcess }): Promise<void> =>
    new Promise<void>((resolve) => {
      if (m.proc.exitCode !== null || m.proc.signalCode !== null) return resolve();
      m.proc.once('exit', () => resolve());
      m.proc.kill('SIGCONT');
      m.proc.kill('SIGKILL');
    });
  const stop = async (): Promise<void> => {
    await Promise.all(members.map(killed));
    rmSync(dir, { recursive: true, force: true });
  };
  const healthy = (m: { client: number }): Promise<boolean> =>
    tls
      ? healthyTls(m.client, tls)
      : fetch(`http://127.0.0.1:${m.client}/health`).then(
          async (r) => r.ok && ((await r.json()) as { health?: string }).health === 'true',
          () => false,
        );
  /** Until every one of `which` answers its health endpoint (20 s at most). */
  const up = async (which: typeof members): Promise<void> => {
    for (let i = 0; ; i++) {
      if ((await Promise.all(which.map(healthy))).every(Boolean)) return;
      if (i > 200) throw new Error('etcd did not come up within 20 s');
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  try {
    await up(members);
  } catch (e) {
    await stop();
    throw e;
  }
  const member = (i: number): (typeof members)[number] => {
    const m = members[i];
    if (!m) throw new Error(`no etcd member ${i}`);
    return m;
  };
  return {
    cluster,
    members,
    pause: (i = 0) => members[i]?.proc.kill('SIGSTOP'),
    resume: (i = 0) => members[i]?.proc.kill('SIGCONT'),
    kill: (i) => killed(member(i)),
    restart: async (i) => {
      const m = member(i);
      await killed(m);
      // Its data dir holds its membership: the --initial-cluster flags are ignored now.
      m.proc = launch(m);
      await up([m]);
    },
    leader: async () => {
      for (const [i, m] of members.entries()) {
        if (m.proc.exitCode !== null || m.proc.signalCode !== null) continue;
        const r = await fetch(`http://127.0.0.1:${m.client}/v3/maintenance/status`, { method: 'POST', body: '{}' }).catch(
          () => null,
        );
        if (!r?.ok) continue;
        const status = (await r.json()) as { header: { member_id: string }; leader: string };
        if (status.leader === status.header.member_id) return i;
      }
      throw new Error('no etcd member says it leads');
    },
    stop,
  };
}
