/**
 * The `gvisor` driver: each sandbox is a runsc (gVisor) sandbox — a user-space kernel between
 * the program and the host — started inside a cgroup realm owns (memory, pids, cpu), with
 * runsc's state under the sandbox's state directory so a restarted daemon can find or remove it.
 * Execs go in with `runsc exec` through realm-gvexec (native/realm-gvexec.c), which keeps each
 * exec's process tree together and reports signals as signals.
 * Network as under the namespace driver, enforced outside: `none` is gVisor's loopback only; `all`
 * is gVisor's network stack on slirp4netns's tap0 in a network namespace of the sandbox's own
 * (launch.ts); an allow-list is loopback plus the forwarder to the daemon's proxy, whose unix socket
 * runsc lets the sandbox connect to (`--host-uds=open`).
 */
import { traced } from '../../telemetry/trace.js';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';
import { basename, join } from 'node:path';
import type { Readable } from 'node:stream';
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
  RecoverResult,
  SandboxLimits,
  SandboxUsage,
} from '../driver.js';
import { sandboxUsage } from '../shared/usage.js';
import { RealmError } from '../../util/errors.js';
import { processStartTime } from '../../util/proc.js';
import { type CgroupManager, probeCgroups } from '../shared/cgroups.js';
import { FS_TOOL, INIT, makeWritableLayer, umount } from '../shared/helper.js';
import { installExecutables, installSeccomp } from '../shared/runtime-files.js';
import { running } from '../shared/process.js';
import { foreignState, isObject, isOptNumber, isString } from '../shared/state.js';
import { SANDBOX_USER, buildEtc } from '../shared/etc.js';
import { writeFilesUnder } from '../shared/files.js';
import { wholeSandboxRun } from '../shared/whole-sandbox-run.js';
import { escapeRe, readLog, readPid, signalName, waitForFile } from '../shared/util.js';
import { sweepOrphans } from '../shared/sweep.js';
import { tieToDaemon } from '../shared/tie.js';
import { removeTree } from '../../util/safe-tree.js';
import { type GvRuntime, READY_FILE, writeBundle } from './bundle.js';
import { killByRoot, probeGvisor } from './probe.js';
import { GVEXEC, KILL_TREE_SIGNAL, type Platform, RUNSC, type RunscNet, globalArgs, runsc } from './runsc.js';
import { runscRun } from './launch.js';
import { SLIRP, SLIRP_DNS, networkModes } from '../shared/slirp.js';

export interface GvisorDriverOptions {
  /** Directory for files shared by all gVisor sandboxes (generated /etc, realm's tools). */
  runtimeDir: string;
  /** Name of the cgroup (under each hierarchy's root) that holds realm's sandboxes. */
  cgroupRoot: string;
}

/** What every sandbox's user was on the host before each had a uid of its own (a recovered state may say none). */
const LEGACY_UID = 65532;

/**
 * The host pids cgroup also counts gVisor's own threads and, on ptrace, a stub process per
 * address space: running out there kills the whole sandbox. So the host limit leaves room, and
 * the sandbox's own limit is enforced inside gVisor (RLIMIT_NPROC of the sandbox user, set by
 * realm-gvexec), where forking past it fails with EAGAIN as under the namespace driver.
 */
export function hostPids(pids: number): number {
  // Measured on ptrace: a fork bomb held at 32 processes inside took the sentry past 1024 host
  // tasks (failed forks and exiting tasks still cost host threads for a while).
  return Math.max(4096, 16 * pids);
}

export interface GvState extends DriverState {
  cgroup: string;
  stateDir: string;
  /** The host uid (and gid) the sandbox user's files belong to (home, volumes). */
  uid?: number;
  platform: Platform;
  /** How runsc wires its network (absent: none, as before allow-lists and `all`). */
  net?: RunscNet;
  /** The sandbox's process limit (enforced inside, see hostPids). */
  pids?: number;
  /** The sandbox's memory limit (its host cgroup's): the only memory limit this driver has. */
  memoryBytes?: number;
  pid?: number;
  startTime?: number;
}

/** runsc's container id: the sandbox id (runsc names its control socket after it, so it must be unique on the host). */
const cidOf = (state: GvState): string => basename(state.stateDir);

function isGvState(raw: DriverState): raw is GvState {
  const net = raw.net;
  return (
    isString(raw.cgroup) &&
    isString(raw.stateDir) &&
    (raw.platform === 'ptrace' || raw.platform === 'kvm') &&
    isOptNumber(raw.uid) &&
    (net === undefined ||
      (isObject(net) && (net.network === 'none' || net.network === 'sandbox') && typeof net.hostUds === 'boolean')) &&
    isOptNumber(raw.pids) &&
    isOptNumber(raw.memoryBytes) &&
    isOptNumber(raw.pid) &&
    isOptNumber(raw.startTime)
  );
}

export class GvisorDriver implements Driver<GvState> {
  readonly name = 'gvisor' as const;
  /**
   * No per-exec memory or cpu limit: gVisor's sentry is one host process in the sandbox's cgroup
   * and enforces neither per process (see exec). Processes per exec: RLIMIT_NPROC inside.
   */
  readonly capabilities: DriverCapabilities = {
    networkModes: networkModes(),
    maxVolumes: null,
    perExecMemoryLimit: false,
    perExecCpuLimit: false,
    perExecPidsLimit: true,
    tty: true,
    interactive: true,
    stopStart: true,
    nativePrograms: true,
  };
  private runtime: GvRuntime | undefined;
  private cgroups: CgroupManager | undefined;
  private platform: Platform | undefined;

  constructor(private readonly opts: GvisorDriverOptions) {}

  async fingerprint(): Promise<DriverInfo> {
    const p = await probeGvisor();
    this.platform = p.platform;
    return { ...p.info, capabilities: this.capabilities };
  }

  private async prepare(): Promise<{ rt: GvRuntime; cg: CgroupManager; platform: Platform }> {
    if (this.runtime && this.cgroups && this.platform) return { rt: this.runtime, cg: this.cgroups, platform: this.platform };
    const probe = await probeGvisor();
    if (!probe.platform)
      throw new RealmError('DRIVER_UNAVAILABLE', `driver "gvisor" cannot run on this host: ${probe.info.reason ?? 'unknown'}`);
    const cgp = probeCgroups();
    if (!cgp.ok) throw new Error(cgp.reason);
    const dir = this.opts.runtimeDir;
    // root's alone: runsc and its gofer (root) open everything bound into a gVisor sandbox.
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    const rt: GvRuntime = {
      etcDir: buildEtc(dir),
      initPath: join(dir, 'realm-init'),
      fsPath: join(dir, 'realm-fs'),
      execPath: join(dir, 'realm-gvexec'),
      seccompPath: join(dir, 'seccomp.bpf'),
      resolvConf: join(dir, 'resolv.conf'),
    };
    writeFileSync(rt.resolvConf, `nameserver ${SLIRP_DNS}\n`, { mode: 0o644 });
    await installSeccomp(rt.seccompPath);
    installExecutables([
      [INIT, rt.initPath],
      [FS_TOOL, rt.fsPath],
      [GVEXEC, rt.execPath],
    ]);
    this.runtime = rt;
    this.cgroups = cgp.manager;
    this.platform = probe.platform;
    return { rt, cg: cgp.manager, platform: probe.platform };
  }

  /** Refuse what this host cannot give, before anything is made. */
  private check(spec: DriverSandboxSpec): void {
    if (spec.network === 'all' && !SLIRP)
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        'network "all" on the gvisor driver needs slirp4netns (apt-get install slirp4netns), or use network "none" or an allow-list',
      );
  }

  decodeState(raw: DriverState): GvState {
    if (!isGvState(raw)) throw foreignState(this.name, raw);
    return raw;
  }

  create(spec: DriverSandboxSpec): Promise<GvState> {
    return traced('gvisor.create', { 'realm.sandbox.id': spec.id, 'realm.network': spec.network }, () =>
      this.createSandbox(spec),
    );
  }

  private async createSandbox(spec: DriverSandboxSpec): Promise<GvState> {
    const { platform } = await this.prepare();
    const state: GvState = { cgroup: `${this.opts.cgroupRoot}/${spec.id}`, stateDir: spec.stateDir, platform, uid: spec.uid };
    try {
      // A refusal also removes what the engine put in the state dir (an allow-list's proxy dir).
      this.check(spec);
      // The writable layer: a host tmpfs of the disk limit (root-only; runsc's gofer serves it).
      await makeWritableLayer(spec.stateDir, spec.limits.diskBytes, 0, spec.uid);
      return await this.start(spec, state);
    } catch (e) {
      await this.destroy(state).catch(() => undefined);
      throw e;
    }
  }

  async start(spec: DriverSandboxSpec, prev: GvState): Promise<GvState> {
    this.check(spec);
    const { rt, cg, platform } = await this.prepare();
    // Host unix sockets can be connected to where a sandbox has host directories bound in — the
    // allow-list proxy's, volumes, a workspace's share (its forwarded SSH agent) — as under namespace.
    const hostUds = spec.proxy !== undefined || spec.mounts.length > 0;
    const net: RunscNet = { network: spec.network === 'all' ? 'sandbox' : 'none', hostUds };
    const state: GvState = { ...prev, platform, net, pids: spec.limits.pids, memoryBytes: spec.limits.memoryBytes };
    const root = join(state.stateDir, 'runsc');
    const status = join(state.stateDir, 'status');
    await removeTree(root);
    await removeTree(status); // bound read-write into the sandbox
    mkdirSync(root, { mode: 0o700 });
    mkdirSync(status, { mode: 0o700 });
    const bundle = join(state.stateDir, 'bundle');
    const writeOut = (netns?: string): void =>
      writeBundle(bundle, spec, rt, { home: join(state.stateDir, 'rw', 'home'), status }, spec.uid, { netns });
    const box = cg.create(state.cgroup);
    box.setLimits({ memoryBytes: spec.limits.memoryBytes, pids: hostPids(spec.limits.pids), cpus: spec.limits.cpus });
    const logPath = join(state.stateDir, 'runsc.log');
    const log = openSync(logPath, 'w', 0o600);
    const pidFile = join(state.stateDir, 'sandbox.pid');
    const runArgs = [
      RUNSC as string,
      ...globalArgs(root, platform, net),
      'run',
      '--detach',
      '--bundle',
      bundle,
      '--pid-file',
      pidFile,
      cidOf(state),
    ];
    try {
      // Network `all`: tap0 first, in a network namespace the sandbox then joins (launch.ts).
      const code = await runscRun(
        runArgs,
        box.procsFiles(),
        log,
        writeOut,
        net.network === 'sandbox' ? join(state.stateDir, 'proc') : undefined,
      );
      if (code !== 0) throw new Error(`runsc run failed (exit ${code}): ${readLog(logPath)}`);
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      state.pid = pid;
      state.startTime = processStartTime(pid) ?? undefined;
      if (state.startTime === undefined) throw new Error(`the gVisor sandbox exited at once: ${readLog(logPath)}`);
      // An allow-list's forwarder listens before the first exec can try it.
      if (spec.proxy)
        await waitForFile(
          join(status, READY_FILE),
          () => running(state),
          10_000,
          `the sandbox's proxy forwarder did not start: ${readLog(logPath)}`,
        );
    } catch (e) {
      await this.teardown(state).catch(() => undefined);
      throw e;
    } finally {
      closeSync(log);
    }
    return state;
  }

  exec(state: GvState, spec: ExecSpec): DriverProcess {
    if (!this.cgroups || !this.runtime) throw new Error('gvisor driver used before create/recover');
    if (!running(state)) throw new Error('sandbox is not running');
    // gVisor's memory is one host process (the sentry) in the sandbox's cgroup, and the sentry
    // enforces no per-process or per-cgroup memory limit of its own: an exec limit tighter than
    // the sandbox's would be a silent no-op, so it is refused.
    if (spec.memoryBytes !== undefined && state.memoryBytes !== undefined && spec.memoryBytes < state.memoryBytes) {
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        `the gvisor driver has no per-exec memory limit: this sandbox's limit is ${mib(state.memoryBytes)}, the exec asked for ${mib(spec.memoryBytes)}; ` +
          "create the sandbox with that memory limit (--memory), leave out the exec's, or use --driver namespace",
      );
    }
    const box = this.cgroups.open(state.cgroup);
    const before = box.stats();
    const oomBefore = before.oomKills;
    const xid = `x${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
    const statusDir = join(state.stateDir, 'status');
    const hostStatus = join(statusDir, xid);
    const pidFile = join(statusDir, `${xid}.pid`);
    const sizeFile = `${xid}.size`;
    if (spec.tty) writeFileSync(join(statusDir, sizeFile), `${spec.tty.rows} ${spec.tty.cols}\n`, { mode: 0o600 });
    const root = join(state.stateDir, 'runsc');
    const nproc = spec.pids && state.pids ? Math.min(spec.pids, state.pids) : (spec.pids ?? state.pids);
    const args = [
      ...globalArgs(root, state.platform, state.net),
      'exec',
      '--user',
      '0:0',
      '--cap',
      'CAP_SETUID',
      '--cap',
      'CAP_SETGID',
      '--cap',
      'CAP_KILL',
      '--cap',
      'CAP_SYS_ADMIN',
      '--cwd',
      spec.cwd,
      '--internal-pid-file',
      pidFile,
      ...Object.entries(spec.env).flatMap(([k, v]) => ['--env', `${k}=${v}`]),
      cidOf(state),
      '/.realm/exec',
      `/.realm/status/${xid}`,
      String(SANDBOX_USER.uid),
      String(SANDBOX_USER.gid),
      // Minus one: the exec's own first process is not charged to the user (it was forked as root).
      ...(nproc ? ['--nproc', String(Math.max(1, nproc - 1))] : []),
      ...(spec.tty ? ['--tty', `${spec.tty.rows}x${spec.tty.cols}`, `/.realm/status/${sizeFile}`] : []),
      '--',
      ...spec.argv,
    ];
    // A job's attempt: the whole gVisor sandbox (its sandbox process holds every process of it)
    // dies with the daemon; tied before the exec starts.
    const untie = spec.dieWithDaemon ? tieToDaemon(state.pid, state.startTime) : () => undefined;
    const child = spawn(RUNSC as string, args, {
      stdio: [spec.stdin || spec.tty ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: {},
      cwd: '/',
    });
    const cleanup = (): void => {
      untie();
      for (const f of [hostStatus, pidFile, join(statusDir, sizeFile)]) rmSync(f, { force: true });
    };
    let exited = false;
    const exit = new Promise<ExitInfo>((resolve, reject) => {
      child.once('error', (e) => {
        cleanup();
        reject(e);
      });
      child.once('exit', (code, signal) => {
        exited = true;
        const st = box.exists() ? box.stats() : { oomKills: oomBefore, memoryPeakBytes: 0, cpuNs: 0 };
        const oomKilled = st.oomKills > oomBefore;
        let report = '';
        try {
          report = readFileSync(hostStatus, 'utf8');
        } catch {
          /* the exec never ended on its own: the sandbox died (a limit) or runsc failed */
        }
        cleanup();
        const m = /^(exit|signal) (\d+)/.exec(report);
        // CPU is the host's count for the whole sandbox during the exec (gVisor's own count runs
        // on while the host throttles it, so it would not show the quota); memory is the sandbox's peak.
        const figures = {
          oomKilled,
          memoryBytes: st.memoryPeakBytes,
          cpuMs: Math.max(0, Math.round((st.cpuNs - before.cpuNs) / 1e6)),
        };
        if (m)
          resolve({
            exitCode: m[1] === 'exit' ? Number(m[2]) : null,
            signal: m[1] === 'signal' ? signalName(Number(m[2])) : null,
            ...figures,
          });
        else if (signal) resolve({ exitCode: null, signal, ...figures });
        // runsc lost the sandbox under the exec (it was killed as a whole): report a kill.
        else if (code === 128 || oomKilled) resolve({ exitCode: null, signal: 'SIGKILL', ...figures });
        else resolve({ exitCode: code, signal: null, ...figures });
      });
    });
    const sendSignal = async (sig: string | number): Promise<void> => {
      const pid = await readPid(pidFile, () => exited);
      if (pid === undefined) return;
      await runsc(root, state.platform, ['kill', '--pid', String(pid), cidOf(state), String(sig)], 10_000, state.net).catch(
        () => undefined,
      );
    };
    return {
      stdin: spec.stdin || spec.tty ? child.stdin : null,
      stdout: child.stdout as Readable,
      stderr: child.stderr as Readable,
      signal: (sig) => void sendSignal(constants.signals[sig]),
      kill: async () => {
        if (exited) return;
        await sendSignal(KILL_TREE_SIGNAL);
        // realm-gvexec kills the tree and exits; if it cannot be reached, end the client.
        const gone = await Promise.race([
          exit.then(
            () => true,
            () => true,
          ),
          new Promise<boolean>((r) => setTimeout(() => r(false), 5000)),
        ]);
        if (!gone) child.kill('SIGKILL');
      },
      wait: () => exit,
      release: () => Promise.resolve(),
      ...(spec.tty
        ? {
            resize: (rows: number, cols: number) => {
              try {
                writeFileSync(join(statusDir, sizeFile), `${Math.round(rows)} ${Math.round(cols)}\n`, { mode: 0o600 });
              } catch {
                return;
              }
              void sendSignal(constants.signals.SIGWINCH);
            },
          }
        : {}),
    };
  }

  async prepareRun(spec: DriverSandboxSpec): Promise<PreparedRun> {
    // A one-shot run is a whole sandbox of its own, started ahead and destroyed after.
    const state = await this.create(spec);
    return wholeSandboxRun<GvState>(spec.id, state, {
      running,
      teardown: (s) => this.teardown(s),
      destroy: (s) => this.destroy(s),
      launch: (s, files, exec) => {
        writeFilesUnder(join(s.stateDir, 'rw', 'home'), files, s.uid ?? LEGACY_UID, s.uid ?? LEGACY_UID);
        if (this.cgroups)
          this.cgroups
            .open(s.cgroup)
            .setLimits({ memoryBytes: exec.memoryBytes, pids: exec.pids && hostPids(exec.pids), cpus: exec.cpus });
        if (exec.pids) s.pids = exec.pids;
        // The run's memory limit is its sandbox's (see exec).
        if (exec.memoryBytes !== undefined) s.memoryBytes = exec.memoryBytes;
        return this.exec(s, exec);
      },
    });
  }

  update(state: GvState, limits: Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'>): Promise<void> {
    if (!this.cgroups) throw new Error('gvisor driver used before create/recover');
    this.cgroups.open(state.cgroup).setLimits({ ...limits, pids: hostPids(limits.pids) });
    state.pids = limits.pids;
    state.memoryBytes = limits.memoryBytes;
    return Promise.resolve();
  }

  writeFiles(state: GvState, files: FileToWrite[]): Promise<void> {
    const uid = state.uid ?? LEGACY_UID;
    writeFilesUnder(join(state.stateDir, 'rw', 'home'), files, uid, uid);
    return Promise.resolve();
  }

  async signal(state: GvState, sig: NodeJS.Signals): Promise<void> {
    if (!running(state)) return;
    // realm-gvexec, as the sandbox's root with CAP_KILL only, signals every process but PID 1
    // (realm-init, which keeps the sandbox alive) — those in execs' own PID namespaces too.
    await runsc(
      join(state.stateDir, 'runsc'),
      state.platform,
      [
        'exec',
        '--user',
        '0:0',
        '--cap',
        'CAP_KILL',
        cidOf(state),
        '/.realm/exec',
        '--signal-all',
        String(constants.signals[sig]),
      ],
      10_000,
      state.net,
    );
  }

  async stop(state: GvState, timeoutMs: number): Promise<void> {
    await this.prepare();
    if (timeoutMs > 0 && running(state)) {
      await this.signal(state, 'SIGTERM');
      const deadline = Date.now() + timeoutMs;
      const root = join(state.stateDir, 'runsc');
      while (Date.now() < deadline) {
        // The table (UID PID PPID C TTY STIME TIME CMD): PID 1 and an allow-list's forwarder stay
        // (signal-all spares them); wait for the rest.
        const ps = await runsc(root, state.platform, ['ps', cidOf(state)], 10_000, state.net);
        const rows = ps.stdout
          .trim()
          .split('\n')
          .map((l) => l.trim().split(/\s+/));
        if (ps.code !== 0 || rows[0]?.[1] !== 'PID') break;
        if (!rows.slice(1).some((r) => r[1] !== '1' && r[r.length - 1] !== 'realm-proxy')) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    await this.teardown(state);
  }

  /** Stop the sandbox's processes and remove runsc's state and the cgroup; files stay. */
  private async teardown(state: GvState): Promise<void> {
    const { cg } = await this.prepare();
    const root = join(state.stateDir, 'runsc');
    const box = cg.open(state.cgroup);
    // Kill everything first (the cgroup holds runsc's gofer, sandbox and ptrace stubs; the scan
    // catches any outside it). `runsc delete` is not needed after that and waits ~2 s for a
    // sandbox that is already gone, so its state is simply removed.
    await box.kill();
    killByRoot(root);
    box.remove();
    await removeTree(root);
    delete state.pid;
    delete state.startTime;
  }

  async destroy(state: GvState): Promise<void> {
    await this.teardown(state);
    const rw = join(state.stateDir, 'rw');
    if (existsSync(rw)) await umount(rw);
    // The sandbox wrote in there (its home, were the unmount to fail): no link is followed.
    await removeTree(state.stateDir);
  }

  /** Its host cgroup's figures (the whole gVisor sandbox: Sentry, Gofer and all) and its writable layer's tmpfs. */
  async usage(state: GvState): Promise<SandboxUsage> {
    const { cg } = await this.prepare();
    return sandboxUsage(cg.open(state.cgroup), { disk: join(state.stateDir, 'rw') });
  }

  async recover(state: GvState): Promise<RecoverResult> {
    await this.prepare();
    if (running(state)) return 'running';
    await this.teardown(state);
    return 'stopped';
  }

  async sweep(known: Set<string>, stateRoot: string): Promise<string[]> {
    const { cg } = await this.prepare();
    const removed: string[] = [];
    // runsc processes of sandboxes no record owns, even outside any cgroup of ours.
    for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        const id = new RegExp(`--root=${escapeRe(stateRoot)}/([^/\\0]+)/runsc\\0`).exec(cmd)?.[1];
        if (id && !known.has(id)) process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    removed.push(
      ...(await sweepOrphans({
        cg,
        cgroupRoot: this.opts.cgroupRoot,
        known,
        stateRoot,
        beforeRemove: (dir) => killByRoot(join(dir, 'runsc')),
      })),
    );
    return removed;
  }
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)}m`;
}
