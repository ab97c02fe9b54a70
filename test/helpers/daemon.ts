/**
 * Test harness: a real daemon on a random loopback port with its own data dir and cgroup root,
 * and a check that nothing of a sandbox is left behind (processes, mounts, cgroups, files).
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import Database from 'better-sqlite3';
import { Client } from '@realm/sdk';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/serve.js';
import { probeNamespace } from '../../src/drivers/namespace/probe.js';
import { probeCgroups } from '../../src/drivers/shared/cgroups.js';
import { probeGvisor } from '../../src/drivers/gvisor/probe.js';
import { probeMicrovm } from '../../src/drivers/microvm/probe.js';
import { cgroup2Mount } from '../../src/net/egress.js';
import { ensureKernel } from '../../src/drivers/microvm/assets.js';
import { defaultKernelDir } from '../../src/drivers/microvm/driver.js';
import type { DriverName } from '../../src/drivers/driver.js';
import { watchResponses } from './response-check.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { Tokens } from '../../src/daemon/auth.js';

/**
 * The host uids test daemons give their sandboxes: clear of a real daemon's default range, and a
 * range of its own for each lane of `npm test` (REALM_TEST_LANE, test/run/lanes.ts), so that
 * per-user kernel limits (inotify instances, message queue bytes, keys) are never shared by two
 * test files running at once.
 */
export const TEST_UID_RANGE = { first: 0x70100000 + 0x10000 * testLane(), count: 65536 };

/** This test process's lane of `npm test` (REALM_TEST_LANE, 0 when run alone). */
export function testLane(): number {
  const lane = Number(process.env.REALM_TEST_LANE ?? 0);
  if (!Number.isInteger(lane) || lane < 0 || lane > 15)
    throw new Error(`REALM_TEST_LANE must be 0…15, not ${process.env.REALM_TEST_LANE}`);
  return lane;
}
/** Owner of volumes at rest in test daemons. */
export const STORAGE_UID = TEST_UID_RANGE.first;
/** A uid sandboxes of test daemons may run as (for a host process acting as "a sandbox uid"). */
export const A_SANDBOX_UID = TEST_UID_RANGE.first + 2;

/** True for a uid a test daemon's sandboxes (or their VMMs) run as. */
export function isSandboxUid(uid: number): boolean {
  return uid >= TEST_UID_RANGE.first + 2 && uid < TEST_UID_RANGE.first + TEST_UID_RANGE.count;
}

/** The host uid a sandbox of `t` runs as (from its record; its VMM's is one more). */
export function hostUidOf(t: Pick<TestDaemon, 'dataDir'>, id: string): number {
  const db = new Database(join(t.dataDir, 'state.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare<[string], { body: string }>('SELECT body FROM sandboxes WHERE id = ?').get(id);
    const uid = row ? (JSON.parse(row.body) as { uid?: number }).uid : undefined;
    if (uid === undefined) throw new Error(`sandbox ${id} has no host uid in ${t.dataDir}`);
    return uid;
  } finally {
    db.close();
  }
}

export interface TestDaemon {
  daemon: Daemon;
  url: string;
  /** A client with the admin token (every TCP request wants a token). */
  client: Client;
  /** The admin token. */
  token: string;
  /** The daemon's unix socket (in its data dir unless the test chose one). */
  socket: string;
  dataDir: string;
  cgroupRoot: string;
  /** Stop the daemon (sandboxes keep running, as after a crash) — or destroy all, then stop. */
  close(opts?: { keepSandboxes?: boolean }): Promise<void>;
}

/** The admin token of each test daemon by URL, for tests that run bin/realm with REALM_URL (which then wants REALM_TOKEN). */
const tokens = new Map<string, string>();
export function tokenFor(url: string): string {
  return tokens.get(url) ?? '';
}

let skip: Promise<string | undefined> | undefined;

/** Why the namespace driver cannot run here (printed as the skip reason), or undefined. */
export function namespaceSkipReason(): Promise<string | undefined> {
  skip ??= probeNamespace(TEST_UID_RANGE.first + 1).then((i) =>
    i.available ? undefined : `namespace driver unavailable on this host: ${i.reason ?? ''}`,
  );
  return skip;
}

let gvSkip: Promise<string | undefined> | undefined;

/** Why the gvisor driver cannot run here (printed as the skip reason), or undefined. */
export function gvisorSkipReason(): Promise<string | undefined> {
  gvSkip ??= probeGvisor().then((p) =>
    p.info.available ? undefined : `gvisor driver unavailable on this host: ${p.info.reason ?? ''}`,
  );
  return gvSkip;
}

let mvSkip: Promise<string | undefined> | undefined;

/** Why the microvm driver cannot run here even under emulation (printed as the skip reason), or undefined. */
export function microvmSkipReason(): Promise<string | undefined> {
  mvSkip ??= probeMicrovm(() => ensureKernel(defaultKernelDir()), true).then((p) =>
    p.info.available ? undefined : `microvm driver unavailable on this host: ${p.info.reason ?? ''}`,
  );
  return mvSkip;
}

/**
 * The driver test daemons use when a create or run names none: REALM_TEST_DRIVER=gvisor or
 * =microvm runs a suite written for the default driver (the hostile suite) against that driver.
 * Under microvm the test daemons may run VMs under emulation where KVM cannot boot guests.
 */
export const TEST_DRIVER: DriverName =
  (['gvisor', 'microvm'] as const).find((d) => d === process.env.REALM_TEST_DRIVER) ?? 'namespace';

/** Why the test driver (REALM_TEST_DRIVER, default namespace) cannot run here, or undefined. */
export async function testDriverSkipReason(): Promise<string | undefined> {
  const own =
    TEST_DRIVER === 'gvisor'
      ? gvisorSkipReason
      : TEST_DRIVER === 'microvm'
        ? microvmSkipReason
        : () => Promise.resolve(undefined);
  return (await namespaceSkipReason()) ?? (await own());
}

/** True when the test driver runs its sandboxes under emulation (microvm without KVM): programs run several times slower. */
export async function testDriverEmulated(): Promise<boolean> {
  if (TEST_DRIVER !== 'microvm' || (await testDriverSkipReason())) return false;
  return (await probeMicrovm(() => ensureKernel(defaultKernelDir()), true)).accel === 'tcg';
}

export async function startTestDaemon(
  opts: {
    dataDir?: string;
    cgroupRoot?: string;
    maxSandboxes?: number;
    warm?: number;
    socket?: string;
    anonymous?: 'runs'[];
    listen?: string;
    maxRuns?: number;
    pinnedHosts?: Record<string, string>;
    allowPrivate?: string[];
    proxyUpstreamCa?: string;
    imageCacheDir?: string;
    imageDirs?: string[];
    microvmAllowEmulation?: boolean;
    hostNames?: string[];
    corsOrigins?: string[];
    /** The app gateway: off unless asked; `127.0.0.1:0` serves it on a free port (daemon.gatewayUrl). */
    gateway?: string;
    /** This node's tags (`realm serve --tag`). */
    tags?: string[];
    maxJobLogBytes?: number;
    /** Metrics on or off, public, a separate listener, the history's interval. */
    metrics?: Pick<DaemonOptions, 'metrics' | 'metricsPublic' | 'metricsListen' | 'metricsIntervalMs'>;
    /** A preview-only listener (realm serve --public-listen). */
    publicListen?: string;
    /** The daemon's log (default: as realm serve's, but stderr shows warnings and errors only). */
    log?: DaemonOptions['log'];
  } = {},
): Promise<TestDaemon> {
  const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), 'realm-test-'));
  const cgroupRoot = opts.cgroupRoot ?? `realm-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  let daemon: Daemon;
  try {
    daemon = await startDaemon({
      listen: opts.listen ?? '127.0.0.1:0',
      // Never 8080: a real daemon's gateway (and other test daemons) may hold it.
      gateway: opts.gateway ?? 'off',
      dataDir,
      uidRange: TEST_UID_RANGE,
      maxSandboxes: opts.maxSandboxes ?? 1000,
      cgroupRoot,
      warm: opts.warm ?? 2,
      socket: opts.socket ?? join(dataDir, 'api.sock'),
      ...(opts.anonymous ? { anonymous: opts.anonymous } : {}),
      defaultDriver: TEST_DRIVER,
      ...(opts.maxRuns ? { maxRuns: opts.maxRuns } : {}),
      ...(opts.maxJobLogBytes ? { maxJobLogBytes: opts.maxJobLogBytes } : {}),
      ...(opts.pinnedHosts ? { pinnedHosts: opts.pinnedHosts } : {}),
      ...(opts.allowPrivate ? { allowPrivate: opts.allowPrivate } : {}),
      ...(opts.proxyUpstreamCa ? { proxyUpstreamCa: opts.proxyUpstreamCa } : {}),
      ...(opts.imageCacheDir ? { imageCacheDir: opts.imageCacheDir } : {}),
      ...(opts.imageDirs ? { imageDirs: opts.imageDirs } : {}),
      ...(opts.hostNames ? { hostNames: opts.hostNames } : {}),
      ...(opts.corsOrigins ? { corsOrigins: opts.corsOrigins } : {}),
      ...(opts.tags ? { tags: opts.tags } : {}),
      ...opts.metrics,
      ...(opts.publicListen ? { publicListen: opts.publicListen } : {}),
      log: { stderr: 'warn', ...opts.log },
      ...(opts.microvmAllowEmulation !== undefined
        ? { microvmAllowEmulation: opts.microvmAllowEmulation }
        : TEST_DRIVER === 'microvm'
          ? { microvmAllowEmulation: true }
          : {}),
    });
  } catch (e) {
    if (!opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const client = new Client({ url: daemon.url, token });
  tokens.set(daemon.url, token);
  // Every answer is checked against the OpenAPI document; a mismatch fails close().
  const unwatch = watchResponses(daemon.url, daemon.socket);
  return {
    daemon,
    url: daemon.url,
    client,
    token,
    socket: daemon.socket,
    dataDir,
    cgroupRoot,
    close: async ({ keepSandboxes = false } = {}) => {
      if (!keepSandboxes) {
        for (const s of await daemon.engine.listSandboxes()) await daemon.engine.destroySandbox(s.id).catch(() => undefined);
      }
      await daemon.close();
      unwatch();
    },
  };
}

/**
 * Start a daemon before a suite's tests and close it after (removing its data dir and cgroup
 * root), handing it to `set`: `let t: TestDaemon; daemonHooks((d) => (t = d));`.
 */
export function daemonHooks(set: (t: TestDaemon) => void, opts: Parameters<typeof startTestDaemon>[0] = {}, skip?: string): void {
  let t: TestDaemon | undefined;
  before(async () => {
    if (skip) return; // the host cannot: the tests say why
    t = await startTestDaemon(opts);
    set(t);
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });
}

/** Everything a sandbox could leave behind, listed; empty means clean. */
export async function leftovers(t: Pick<TestDaemon, 'dataDir' | 'cgroupRoot'> & { daemon?: Daemon }): Promise<string[]> {
  await t.daemon?.engine.settled();
  const found: string[] = [];
  // Live sandboxes, and those waiting in warm pools, own their cgroups, mounts and processes.
  const live = new Set([
    ...((await t.daemon?.engine.listSandboxes())?.map((s) => s.id) ?? []),
    ...(t.daemon?.engine.warmIds() ?? []),
  ]);
  // Host uids go back when their sandbox or run is gone (a run whose client left may still be
  // finishing: its clean-up is given a few seconds, as the other checks are).
  const engine = t.daemon?.engine;
  if (engine) {
    const held = async (): Promise<string[]> => {
      const now = new Set([...(await engine.listSandboxes()).map((s) => s.id), ...engine.warmIds()]);
      return engine.hostIds.holders().filter((h) => !now.has(h));
    };
    for (let i = 0; i < 50 && (await held()).length; i++) await new Promise((r) => setTimeout(r, 100));
    for (const holder of await held()) found.push(`host uid ${engine.hostIds.uidOf(holder) ?? '?'} still held for ${holder}`);
  }
  const sbDir = join(t.dataDir, 'sandboxes');
  if (existsSync(sbDir)) for (const d of readdirSync(sbDir)) if (!live.has(d)) found.push(`state dir ${join(sbDir, d)}`);
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const point = line.split(' ')[1] ?? '';
    const id = /\/sandboxes\/([^/]+)\//.exec(point + '/')?.[1];
    if (point.startsWith(t.dataDir) && !(id && live.has(id))) found.push(`mount ${point}`);
  }
  const cg = probeCgroups();
  if (cg.ok) {
    for (const rel of cg.manager.children(t.cgroupRoot)) {
      const id = rel.slice(t.cgroupRoot.length + 1);
      if (!live.has(id)) found.push(`cgroup ${rel}`);
    }
  }
  // Processes of this daemon's sandboxes: in its cgroups (whatever their uid: slirp4netns runs as
  // root), or started with its data dir (bwrap; runsc's gofer and sandbox processes, which run as
  // root and nobody, name it in --root=; a microVM's QEMU and virtiofsd, which run as root, name
  // its state dir's vm/ in their argv).
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      if (
        !isSandboxUid(Number(/^Uid:\s+(\d+)/m.exec(status)?.[1])) &&
        !cmdline.includes(`--root=${t.dataDir}/`) &&
        !new RegExp(`${t.dataDir}/sandboxes/[^/\0]+/vm/`).test(cmdline) &&
        !cgroup.includes(`/${t.cgroupRoot}/`)
      )
        continue;
      const id = new RegExp(`/${t.cgroupRoot}/([^/\n]+)`).exec(cgroup)?.[1] ?? /\/sandboxes\/([^/]+)\//.exec(cmdline)?.[1];
      const ours = cgroup.includes(`/${t.cgroupRoot}/`) || cmdline.includes(t.dataDir);
      if (ours && !(id && live.has(id)))
        found.push(`process ${pid} (${/^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?'}) of sandbox ${id ?? '?'}`);
    } catch {
      /* exited while we looked */
    }
  }
  return found;
}

/** Remove a test's data dir and its cgroup root once everything inside is gone (waiting up to 2 s for it). */
export function removeTestDirs(t: Pick<TestDaemon, 'dataDir' | 'cgroupRoot'>): void {
  const cg = probeCgroups();
  if (cg.ok) {
    for (let i = 0; i < 100; i++) {
      try {
        cg.manager.open(t.cgroupRoot).remove();
        break;
      } catch {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20); // a process still exiting
      }
    }
  }
  rmSync(t.dataDir, { recursive: true, force: true });
}

/**
 * The cgroup v2 directory of this cgroup root, if it is there: a daemon's egress guard makes it
 * (also on a hybrid host, where the drivers' cgroups are v1's) and removes it when it stops.
 */
export function egressRootLeft(cgroupRoot: string): string[] {
  const mount = cgroup2Mount();
  const dir = mount ? join(mount, cgroupRoot) : undefined;
  return dir && existsSync(dir) ? [dir] : [];
}

/** A client acting as `owner` (e.g. `uid:4201`) with a token of its own, made in the daemon's store as `realm token create` would. */
export async function userClient(t: Pick<TestDaemon, 'dataDir' | 'url'>, owner: string): Promise<Client> {
  const store = new SqliteStore(join(t.dataDir, 'state.db'));
  try {
    return new Client({ url: t.url, token: (await new Tokens(store, join(t.dataDir, 'admin-token')).create('u', owner)).token });
  } finally {
    store.close();
  }
}
