/**
 * The `namespace` driver: bubblewrap builds user, pid, net, ipc, uts, mount and cgroup
 * namespaces as an unprivileged uid, with no capabilities, no_new_privs and a seccomp filter;
 * cgroups hold the limits; execs join the running sandbox through the native helper.
 */
import { traced, tracedSync } from '../../telemetry/trace.js';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type {
  Driver,
  DriverCapabilities,
  DriverInfo,
  DriverProcess,
  DriverSandboxSpec,
  DriverState,
  ExecSpec,
  ExitInfo,
  FileToWrite,
  PreparedRun,
  ProgramAhead,
  RecoverResult,
  LimitsUpdate,
  SandboxUsage,
} from '../driver.js';
import { sandboxUsage } from '../shared/usage.js';
import { isSameProcess, processStartTime } from '../../util/proc.js';
import { type CgroupManager, favorDynmods, probeCgroups } from '../shared/cgroups.js';
import { runCommand } from '../../util/run-command.js';
import { BWRAP, FS_TOOL, HELPER, INIT, makeWritableLayer, umount } from '../shared/helper.js';
import { type Runtime, bwrapArgs, launchArgs } from './layout.js';
import { SANDBOX_USER, buildEtc } from '../shared/etc.js';
import { installExecutables, installSeccomp } from '../shared/runtime-files.js';
import { probeNamespace } from './probe.js';
import { writeFilesUnder } from '../shared/files.js';
import { sweepOrphans } from '../shared/sweep.js';
import { readAll, readLog } from '../shared/util.js';
import { removeTree } from '../../util/safe-tree.js';
import { prepareOneShot } from './one-shot.js';
import { SLIRP_DNS, networkModes, startSlirp } from '../shared/slirp.js';
import { Forkserver, type StdioSpec } from '../shared/forkserver.js';
import { foreignState, isOptNumber, isString } from '../shared/state.js';
import { dialNetns } from '../shared/netns-dial.js';
import type { Socket } from 'node:net';

export interface NamespaceDriverOptions {
  /** Directory for files shared by all sandboxes (generated /etc, init binary, seccomp filter). */
  runtimeDir: string;
  /**
   * The group every sandbox uid carries (and the uid probes run as): it may pass through the
   * data dir and this runtime dir, nothing else. Each sandbox's own uid comes with its spec. Never 0.
   */
  sandboxGroup: number;
  /** Name of the cgroup (under each hierarchy's root) that holds realm's sandboxes. */
  cgroupRoot: string;
}

/** What every sandbox ran as before each had a uid of its own (a recovered sandbox's state may say none). */
const LEGACY_UID = 65532;

/** Where the helper puts the seccomp program for bwrap: above any fd a spawn passes down. */
const SECCOMP_FD = 200;

export interface NsState extends DriverState {
  cgroup: string;
  stateDir: string;
  /** The sandbox's host uid (none: a sandbox of a realm that ran every sandbox as 65532). */
  uid?: number;
  pid?: number;
  startTime?: number;
}

function isNsState(raw: DriverState): raw is NsState {
  return (
    isString(raw.cgroup) && isString(raw.stateDir) && isOptNumber(raw.uid) && isOptNumber(raw.pid) && isOptNumber(raw.startTime)
  );
}

export class NamespaceDriver implements Driver<NsState> {
  readonly name = 'namespace' as const;
  readonly capabilities: DriverCapabilities = {
    networkModes: networkModes(),
    maxVolumes: null,
    perExecMemoryLimit: true,
    perExecCpuLimit: true,
    perExecPidsLimit: true,
    tty: true,
    interactive: true,
    stopStart: true,
    nativePrograms: true,
  };
  private cgroups: CgroupManager | undefined;
  private runtime: Runtime | undefined;
  private execSeq = 0;
  private forks: Promise<Forkserver> | undefined;
  /** How one-shot sandboxes are built: realm-helper's own builder, or bwrap (with the reason). */
  launcher: { native: true } | { native: false; reason: string } = { native: false, reason: 'not probed yet' };
  /** State of the kernel's favordynmods flag, once prepared. */
  dynmods: string | undefined;

  constructor(private readonly opts: NamespaceDriverOptions) {
    if (opts.sandboxGroup === 0) throw new Error('sandboxGroup must not be 0');
  }

  async fingerprint(): Promise<DriverInfo> {
    const info = await probeNamespace(this.opts.sandboxGroup);
    if (info.available) {
      await this.prepare();
      info.details.cgroupFavorDynmods = this.dynmods ?? 'unknown';
      info.details.oneShotBuilder = this.launcher.native ? 'realm-helper sandbox' : `bwrap (${this.launcher.reason})`;
    }
    return { ...info, capabilities: this.capabilities };
  }

  /**
   * Lazily prepare shared runtime files; throws with the probe's reason when the host cannot. One
   * preparation at a time: callers that come while it runs (the wasm driver fingerprints this
   * driver, its host, alongside the daemon's own fingerprint of it) wait for it rather than
   * writing the same files at once (two renames of one `seccomp.bpf.new` fail with ENOENT).
   */
  private prepare(): Promise<{ cg: CgroupManager; rt: Runtime }> {
    if (this.cgroups && this.runtime) return Promise.resolve({ cg: this.cgroups, rt: this.runtime });
    this.preparing ??= this.prepareOnce().finally(() => (this.preparing = undefined));
    return this.preparing;
  }

  private preparing: Promise<{ cg: CgroupManager; rt: Runtime }> | undefined;

  private async prepareOnce(): Promise<{ cg: CgroupManager; rt: Runtime }> {
    const probe = probeCgroups();
    if (!probe.ok) throw new Error(probe.reason);
    this.dynmods = await favorDynmods(
      async (point) =>
        (await runCommand('/usr/bin/mount', ['-o', 'remount,favordynmods', point], { timeoutMs: 10_000 })).code === 0,
    );
    const dir = this.opts.runtimeDir;
    // bwrap and realm-helper build sandboxes as each sandbox's uid, which carries the sandbox
    // group: it passes through to the generated /etc, init and file tool bound in (and the base a
    // one-shot root is built on).
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownSync(dir, process.getuid?.() ?? 0, this.opts.sandboxGroup);
    chmodSync(dir, 0o710);
    const rt: Runtime = {
      dir,
      etcDir: buildEtc(dir),
      initPath: join(dir, 'realm-init'),
      fsPath: join(dir, 'realm-fs'),
      resolvConf: join(dir, 'resolv.conf'),
      seccompPath: join(dir, 'seccomp.bpf'),
      newRoot: join(dir, 'newroot'),
    };
    mkdirSync(rt.newRoot, { recursive: true, mode: 0o755 });
    writeFileSync(rt.resolvConf, `nameserver ${SLIRP_DNS}\n`, { mode: 0o644 });
    installExecutables([
      [INIT, rt.initPath],
      [FS_TOOL, rt.fsPath],
    ]);
    await installSeccomp(rt.seccompPath);
    this.launcher = await probeLauncher(rt, this.opts.sandboxGroup);
    this.cgroups = probe.manager;
    this.runtime = rt;
    return { cg: probe.manager, rt };
  }

  /** The fork server sandboxes start from (a new one if the last has died). */
  private async forkserver(): Promise<Forkserver> {
    const current = await this.forks?.catch(() => undefined);
    if (current?.alive) return current;
    const { rt } = await this.prepare();
    this.forks = Forkserver.start(HELPER, join(rt.dir, `fork-${process.pid}-${randomBytes(3).toString('hex')}.sock`));
    return this.forks;
  }

  /** End the fork server; running sandboxes are not touched. */
  async close(): Promise<void> {
    const f = await this.forks?.catch(() => undefined);
    this.forks = undefined;
    await f?.close();
  }

  decodeState(raw: DriverState): NsState {
    if (!isNsState(raw)) throw foreignState(this.name, raw);
    return raw;
  }

  create(spec: DriverSandboxSpec): Promise<NsState> {
    return traced('namespace.create', { 'realm.sandbox.id': spec.id, 'realm.network': spec.network }, async () => {
      const state: NsState = { cgroup: `${this.opts.cgroupRoot}/${spec.id}`, stateDir: spec.stateDir, uid: spec.uid };
      try {
        // The writable layer: a tmpfs whose size is the sandbox's disk limit.
        const forks = await this.forkserver();
        await traced('namespace.writable_layer', {}, () =>
          makeWritableLayer(spec.stateDir, spec.limits.diskBytes, spec.uid, spec.uid, (a) => forks.run(a), true),
        );
        return await this.start(spec, state);
      } catch (e) {
        await this.destroy(state).catch(() => undefined);
        throw e;
      }
    });
  }

  async start(spec: DriverSandboxSpec, prev: NsState): Promise<NsState> {
    const { cg, rt } = await this.prepare();
    const state = { ...prev };
    const { box, init } = tracedSync('namespace.cgroup_setup', {}, () => {
      const box = cg.create(state.cgroup);
      box.setLimits({ memoryBytes: spec.limits.memoryBytes, pids: spec.limits.pids, cpus: spec.limits.cpus });
      return { box, init: cg.create(`${state.cgroup}/init`) };
    });
    return traced('namespace.bwrap_start', {}, () => this.launch(spec, rt, state, box, init));
  }

  /** Spawn bwrap (through the fork server) into the sandbox's cgroup and wait until its init is ready. */
  private async launch(
    spec: DriverSandboxSpec,
    rt: Runtime,
    state: NsState,
    box: ReturnType<CgroupManager['create']>,
    init: ReturnType<CgroupManager['create']>,
  ): Promise<NsState> {
    const logPath = join(spec.stateDir, 'bwrap.log');
    const args = [
      'spawn',
      ...init.procsFiles().flatMap((f) => ['--cgroup', f]),
      '--uid',
      String(spec.uid),
      '--gid',
      String(spec.uid),
      '--groups',
      String(this.opts.sandboxGroup),
      '--fd',
      `${SECCOMP_FD}=${rt.seccompPath}`,
      '--keep-fd',
      '3',
      '--keep-fd',
      '4',
      '--',
      BWRAP,
      ...bwrapArgs(spec, rt, {
        home: { bind: join(spec.stateDir, 'rw', 'home') },
        seccompFd: SECCOMP_FD,
        infoFd: 3,
        command: ['/.realm/init', '4', ...(spec.proxy ? ['--proxy', String(spec.proxy.port), '/.realm/net/proxy.sock'] : [])],
        fsTool: true,
      }),
    ];
    const child = await (await this.forkserver()).spawn(args, ['ignore', 'ignore', { file: logPath }, 'pipe', 'pipe']);
    const exited = new Promise<never>((_, reject) => {
      child.once('error', reject);
      child.once('exit', (code, sig) =>
        reject(new Error(`sandbox failed to start (bwrap ${sig ?? `exit ${code}`}): ${readLog(logPath)}`)),
      );
    });
    const info = child.stdio[3] as Readable;
    const ready = child.stdio[4] as Readable;
    try {
      const [infoText] = await Promise.race([Promise.all([readAll(info), readUntil(ready, 'ready')]), exited]);
      const pid = (JSON.parse(infoText) as { 'child-pid'?: number })['child-pid'];
      if (!pid) throw new Error(`bwrap reported no child pid: ${readLog(logPath)}`);
      state.pid = pid;
      state.startTime = processStartTime(pid) ?? undefined;
      if (state.startTime === undefined) throw new Error(`sandbox init exited at once: ${readLog(logPath)}`);
      if (spec.network === 'all') await startSlirp(`/proc/${pid}/ns/net`, init.procsFiles());
    } catch (e) {
      await box.kill().catch(() => undefined);
      const log = readLog(logPath);
      throw new Error(`${(e as Error).message}${log.startsWith('(no') || (e as Error).message.includes(log) ? '' : `: ${log}`}`);
    } finally {
      child.removeAllListeners('exit');
      child.on('exit', () => undefined);
      info.destroy();
      ready.destroy();
    }
    return state;
  }

  /** The sandbox's own loopback, entered from the daemon (its network namespace: bwrap's child's). */
  dialPort(state: NsState, port: number): Promise<Socket> {
    if (!state.pid || !state.startTime) return Promise.reject(new Error('sandbox is not running'));
    // The addon checks the process is still the sandbox's (one read of /proc in C, race-free).
    try {
      return Promise.resolve(dialNetns(`/proc/${state.pid}/ns/net`, port, { pid: state.pid, startTime: state.startTime }));
    } catch (e) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  exec(state: NsState, spec: ExecSpec): DriverProcess {
    if (!this.cgroups || !this.runtime) throw new Error('namespace driver used before create/recover');
    if (!state.pid || !state.startTime || !isSameProcess(state.pid, state.startTime)) throw new Error('sandbox is not running');
    const box = this.cgroups.open(state.cgroup);
    const cg = this.cgroups.create(`${state.cgroup}/x${++this.execSeq}-${randomBytes(3).toString('hex')}`);
    cg.setLimits({ memoryBytes: spec.memoryBytes, pids: spec.pids, cpus: spec.cpus });
    const boxOomBefore = box.stats().oomKills;
    const args = [
      'enter',
      '--target',
      String(state.pid),
      '--seccomp',
      this.runtime.seccompPath,
      ...cg.procsFiles().flatMap((f) => ['--cgroup', f]),
      '--uid',
      String(SANDBOX_USER.uid),
      '--gid',
      String(SANDBOX_USER.gid),
      '--cwd',
      spec.cwd,
      ...(spec.tty ? ['--tty', `${spec.tty.rows}x${spec.tty.cols}`] : []),
      // The fork server ends with the daemon; the helper then kills the sandbox's PID 1 (and so all of it).
      ...(spec.dieWithDaemon ? ['--die-with-parent'] : []),
      ...Object.entries(spec.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      '--',
      ...spec.argv,
    ];
    // A terminal exec gets fd 3 for window sizes. The helper starts from the fork server; the
    // streams handed back now are joined to its sockets once it runs.
    const stdio: StdioSpec[] = [
      spec.stdin || spec.tty ? 'pipe' : 'ignore',
      'pipe',
      'pipe',
      ...(spec.tty ? ['pipe' as const] : []),
    ];
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    const stdin = spec.stdin || spec.tty ? new PassThrough() : null;
    const resizes = new PassThrough();
    const spawned = this.forkserver().then((f) => f.spawn(args, stdio));
    const exit = spawned.then(
      (child) =>
        new Promise<ExitInfo>((resolve) => {
          const [inSock, outSock, errSock, ctlSock] = child.stdio;
          outSock?.pipe(stdout);
          errSock?.pipe(stderr);
          if (stdin && inSock) {
            inSock.on('error', () => undefined); // the program may exit without reading its input
            stdin.pipe(inSock);
          }
          if (ctlSock) {
            ctlSock.on('error', () => undefined);
            resizes.pipe(ctlSock);
          }
          child.once('exit', (code: number | null, signal: NodeJS.Signals | null) => {
            const st = cg.stats();
            const oomKilled = st.oomKills > 0 || box.stats().oomKills > boxOomBefore;
            // Survivors (background processes) keep their cgroup until destroy; an empty one goes now.
            if (cg.pids().length === 0) {
              try {
                cg.remove();
              } catch {
                /* raced with a new process; destroy removes it */
              }
            }
            resolve({ exitCode: code, signal, oomKilled, cpuMs: Math.round(st.cpuNs / 1e6), memoryBytes: st.memoryPeakBytes });
          });
        }),
    );
    exit.catch(() => {
      stdout.end();
      stderr.end();
    });
    return {
      stdin,
      stdout,
      stderr,
      signal: (sig) =>
        void spawned.then(
          (c) => c.kill(sig),
          () => undefined,
        ),
      kill: async () => {
        // A kill that comes before the helper has put itself in the exec's cgroup would find the
        // cgroup empty and the program would start after it: end the helper first (nothing it
        // starts runs then), then everything already in the cgroup.
        (await spawned.catch(() => undefined))?.kill('SIGKILL');
        await cg.kill();
      },
      wait: () => exit,
      release: () => Promise.resolve(),
      ...(spec.tty
        ? { resize: (rows: number, cols: number) => void resizes.write(`${Math.round(rows)} ${Math.round(cols)}\n`) }
        : {}),
    };
  }

  prepareRun(spec: DriverSandboxSpec, ahead?: ProgramAhead): Promise<PreparedRun> {
    return traced('namespace.prepare_run', { 'realm.network': spec.network }, () => this.prepareOneShot(spec, ahead));
  }

  private async prepareOneShot(spec: DriverSandboxSpec, ahead?: ProgramAhead): Promise<PreparedRun> {
    const { cg, rt } = await this.prepare();
    const forks = await this.forkserver();
    return prepareOneShot(
      {
        cg,
        rt,
        forks,
        cgroupRoot: this.opts.cgroupRoot,
        sandboxGroup: this.opts.sandboxGroup,
        native: this.launcher.native,
        seccompFd: SECCOMP_FD,
      },
      spec,
      ahead,
    );
  }

  update(state: NsState, limits: LimitsUpdate): Promise<void> {
    if (!this.cgroups) throw new Error('namespace driver used before create/recover');
    this.cgroups.open(state.cgroup).setLimits(limits);
    return Promise.resolve();
  }

  writeFiles(state: NsState, files: FileToWrite[]): Promise<void> {
    const uid = state.uid ?? LEGACY_UID;
    writeFilesUnder(join(state.stateDir, 'rw', 'home'), files, uid, uid);
    return Promise.resolve();
  }

  async signal(state: NsState, sig: NodeJS.Signals): Promise<void> {
    const { cg } = await this.prepare();
    const initPids = new Set(cg.open(`${state.cgroup}/init`).pids());
    for (const pid of cg.open(state.cgroup).pids()) {
      if (initPids.has(pid)) continue;
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  }

  async stop(state: NsState, timeoutMs: number): Promise<void> {
    const { cg } = await this.prepare();
    const box = cg.open(state.cgroup);
    const init = cg.open(`${state.cgroup}/init`);
    if (timeoutMs > 0) {
      await this.signal(state, 'SIGTERM');
      const deadline = Date.now() + timeoutMs;
      const initPids = new Set(init.pids());
      while (Date.now() < deadline && box.pids().some((p) => !initPids.has(p))) await new Promise((r) => setTimeout(r, 20));
    }
    await box.kill();
    box.remove();
    delete state.pid;
    delete state.startTime;
  }

  async destroy(state: NsState): Promise<void> {
    const { cg } = await this.prepare();
    const box = cg.open(state.cgroup);
    await box.kill();
    box.remove();
    const forks = await this.forkserver();
    const rw = join(state.stateDir, 'rw');
    if (existsSync(rw)) await umount(rw, (a) => forks.run(a));
    // The sandbox wrote in there (its home, were the unmount to fail): no link is followed.
    await removeTree(state.stateDir, (a) => forks.run(a));
  }

  /** Its cgroup's figures, its writable layer's tmpfs and its network namespace (that of its init). */
  async usage(state: NsState): Promise<SandboxUsage> {
    const { cg } = await this.prepare();
    const alive = state.pid !== undefined && state.startTime !== undefined && isSameProcess(state.pid, state.startTime);
    return sandboxUsage(cg.open(state.cgroup), { pid: alive ? state.pid : undefined, disk: join(state.stateDir, 'rw') });
  }

  async recover(state: NsState): Promise<RecoverResult> {
    const { cg } = await this.prepare();
    if (
      state.pid &&
      state.startTime &&
      isSameProcess(state.pid, state.startTime) &&
      cg.open(`${state.cgroup}/init`).pids().includes(state.pid)
    ) {
      return 'running';
    }
    // Half-alive (init gone, execs left) or gone: make it cleanly stopped.
    const box = cg.open(state.cgroup);
    await box.kill();
    box.remove();
    return 'stopped';
  }

  async sweep(known: Set<string>, stateRoot: string): Promise<string[]> {
    const { cg } = await this.prepare();
    return sweepOrphans({ cg, cgroupRoot: this.opts.cgroupRoot, known, stateRoot });
  }
}

/**
 * Whether realm-helper's own one-shot builder works on this kernel (it needs mount_setattr,
 * Linux 5.12): build one sandbox that runs `true`. Otherwise one-shot runs use bwrap.
 */
async function probeLauncher(rt: Runtime, group: number): Promise<NamespaceDriver['launcher']> {
  const spec: DriverSandboxSpec = {
    id: 'probe',
    rootfs: 'host',
    limits: { memoryBytes: 0, pids: 0, cpus: 0, diskBytes: 1 << 20, tmpBytes: 1 << 20 },
    network: 'none',
    mounts: [],
    env: {},
    hostname: 'probe',
    stateDir: rt.dir,
    uid: group,
    vmmUid: group,
  };
  const none = { dirs: [], writes: [], procs: [], stats: { cpu: '', peak: '', oom: '' }, cpuNsPerUnit: 1 };
  const r = await runCommand(HELPER, launchArgs(spec, rt, { cgroup: none, group, keepFds: [], command: ['/usr/bin/true'] }), {
    env: {},
    timeoutMs: 10_000,
  }).catch((e: unknown) => ({ code: null, signal: null, stdout: '', stderr: String(e) }));
  return r.code === 0
    ? { native: true }
    : { native: false, reason: `realm-helper sandbox failed: ${r.stderr.trim() || `exit ${r.code} ${r.signal ?? ''}`}` };
}

function readUntil(stream: Readable, token: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.includes(token)) resolve();
    });
    stream.resume();
    stream.once('end', () => (text.includes(token) ? resolve() : reject(new Error('sandbox init did not report ready'))));
    stream.once('error', reject);
  });
}
