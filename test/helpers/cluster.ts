/**
 * realm nodes as separate processes (`realm serve --cluster …`), each with its own port, data
 * dir, socket, cgroup root and host uid range, for cluster tests.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Client } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { freePort } from './port.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { Tokens } from '../../src/daemon/auth.js';
import { NFT } from '../../src/net/egress.js';
import { egressRootLeft, leftovers, removeTestDirs, testLane } from './daemon.js';

const exec = promisify(execFile);

export interface TestNode {
  id: string;
  url: string;
  dataDir: string;
  cgroupRoot: string;
  proc: ChildProcess;
  /** Its admin's client. */
  client: Client;
  /** Output so far (stderr), for messages. */
  log(): string;
  /** A client acting as local user `uid` on this node (its token written to the node's store, as an admin would make it). */
  userClient(uid: number): Promise<Client>;
  /** Start it again (after a kill), same id, data dir and port. */
  restart(): Promise<void>;
  /** SIGTERM and wait for it to exit. */
  stop(): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stop it (if running) and remove its dirs; what it left behind, listed. */
  remove(): Promise<string[]>;
}

let next = 0;

export interface NodeOptions {
  tags?: string[];
  leaseTtl?: number;
  join?: string;
  /** Listen with TLS (--tls-cert/--tls-key, --advertise https://…); clients trust `ca`. */
  tls?: { cert: string; key: string; ca: string };
  args?: string[];
  /** More environment for the node's process. */
  env?: Record<string, string>;
  /** Its data dir (default: a new one); removed with the node. */
  dataDir?: string;
}

/** `realm serve`'s argv for a test node on `port` with `dataDir` (its own socket, no gateway, no warm pools). */
export function serveArgs(cluster: string, port: number, dataDir: string, id?: string, opts: NodeOptions = {}): string[] {
  return [
    'serve',
    '--listen',
    `127.0.0.1:${port}`,
    '--data-dir',
    dataDir,
    '--socket',
    join(dataDir, 'api.sock'),
    '--gateway',
    'off',
    '--warm',
    '0',
    '--cluster',
    cluster,
    ...(id ? ['--node-id', id] : []),
    '--lease-ttl',
    String(opts.leaseTtl ?? 3),
    ...(opts.tags ?? []).flatMap((t) => ['--tag', t]),
    ...(opts.join ? ['--join', opts.join] : []),
    ...(opts.tls ? ['--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key, '--advertise', `https://127.0.0.1:${port}`] : []),
    ...(opts.args ?? []),
  ];
}

/**
 * Start a node; once more (a new port) when its port was taken between freePort() and its listen
 * (another test file's process, in the other lane, can be handed the same free port meanwhile).
 */
export async function startNode(cluster: string, id: string, opts: NodeOptions = {}): Promise<TestNode> {
  for (let tries = 1; ; tries++) {
    try {
      return await startNodeOnce(cluster, id, opts);
    } catch (e) {
      if (tries >= 3 || opts.dataDir !== undefined || !/EADDRINUSE/.test(String(e))) throw e;
    }
  }
}

async function startNodeOnce(cluster: string, id: string, opts: NodeOptions): Promise<TestNode> {
  const n = next++;
  const port = await freePort();
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), `realm-test-node-${id}-`));
  const cgroupRoot = `realm-test-node-${process.pid}-${id}`;
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const ca = opts.tls ? { ca: readFileSync(opts.tls.ca, 'utf8') } : {};
  let out = '';
  const args = serveArgs(cluster, port, dataDir, id, opts);
  const launch = (): ChildProcess => {
    const p = spawn(join(PACKAGE_ROOT, 'bin', 'realm'), args, {
      env: {
        ...process.env,
        REALM_CGROUP_ROOT: cgroupRoot,
        // Each node its own host uids: two nodes on one host must not hand out the same one (nor
        // two nodes of test files running at once in two lanes of npm test).
        REALM_UID_RANGE: `${0x70200000 + testLane() * 0x200000 + (n % 16) * 0x20000}:65536`,
        ...opts.env,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    return p;
  };
  const up = async (p: ChildProcess): Promise<void> => {
    for (let i = 0; i < 300; i++) {
      if (p.exitCode !== null) throw new Error(`node ${id} exited at start: ${out}`);
      if (/joined the cluster/.test(out)) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`node ${id} did not join within 30 s: ${out}`);
  };
  const exited = (p: ChildProcess): Promise<void> =>
    p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : new Promise((r) => p.once('exit', () => r()));
  const node: TestNode = {
    id,
    url,
    dataDir,
    cgroupRoot,
    proc: launch(),
    client: undefined as unknown as Client,
    log: () => out,
    async userClient(uid) {
      const store = new SqliteStore(join(dataDir, 'state.db'));
      try {
        const made = await new Tokens(store, join(dataDir, 'admin-token')).create(`user-${uid}`, `uid:${uid}`);
        return new Client({ url, token: made.token, ...ca });
      } finally {
        store.close();
      }
    },
    async restart() {
      out = '';
      node.proc = launch();
      await up(node.proc);
    },
    async stop() {
      node.proc.kill('SIGTERM');
      await exited(node.proc);
    },
    async kill(signal = 'SIGKILL') {
      node.proc.kill(signal);
      await exited(node.proc);
    },
    async remove() {
      if (node.proc.exitCode === null && node.proc.signalCode === null) {
        // Its sandboxes outlive a shutdown (they are recovered at the next start): destroy them first.
        const list = await node.client.request<{ sandboxes: { id: string; node?: string }[] }>('GET', '/v1/sandboxes').then(
          (r) => r.sandboxes,
          () => [],
        );
        for (const sb of list.filter((x) => x.node === undefined || x.node === id))
          await node.client.request('DELETE', `/v1/sandboxes/${sb.id}`).catch(() => undefined);
        await node.stop();
      }
      const left = await leftovers({ dataDir, cgroupRoot });
      removeTestDirs({ dataDir, cgroupRoot });
      return left;
    },
  };
  try {
    await up(node.proc);
  } catch (e) {
    // A node that did not start leaves nothing either.
    await node.kill().catch(() => undefined);
    removeTestDirs({ dataDir, cgroupRoot });
    throw e;
  }
  node.client = new Client({ url, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim(), ...ca });
  return node;
}

/** `realm serve --cluster …` with `args`, expected to fail: its exit code, stderr, and what it left. */
export async function failedStart(
  cluster: string,
  args: string[],
): Promise<{ code: number | null; stderr: string; left: string[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-node-tls-'));
  const cgroupRoot = `realm-test-node-tls-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  try {
    const p = spawn(join(PACKAGE_ROOT, 'bin', 'realm'), serveArgs(cluster, await freePort(), dataDir, undefined, { args }), {
      env: { ...process.env, REALM_CGROUP_ROOT: cgroupRoot },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => p.once('exit', (c) => resolve(c)));
    const left = [
      ...(await leftovers({ dataDir, cgroupRoot })),
      ...egressRootLeft(cgroupRoot),
      ...['daemon.json', 'api.sock'].filter((f) => existsSync(join(dataDir, f))),
    ];
    if (NFT) {
      const table = `realm_egress_${createHash('sha256').update(cgroupRoot).digest('hex').slice(0, 16)}`;
      const tables = (await exec(NFT, ['list', 'tables', 'inet'])).stdout;
      if (tables.includes(table)) left.push(`nft table ${table}`);
    }
    return { code, stderr, left };
  } finally {
    removeTestDirs({ dataDir, cgroupRoot });
  }
}
