/**
 * The `microvm` driver: each sandbox is a QEMU `-M microvm` virtual machine (KVM, or TCG
 * emulation where allowed for tests) running Debian's cloud kernel with realm-vmagent as init.
 * The image is shared read-only over virtiofs, the home directory is an ext4 disk image in the
 * sandbox's state dir (it survives stop/start), /tmp a sized tmpfs in the guest, each volume a
 * virtiofs share of its own. Execs (on pipes or a terminal), files and shutdown go through the
 * agent over a virtio-serial port (see agent.ts). Network `all` is a NIC on QEMU's user-mode
 * network from a network namespace of the VM's own with slirp4netns's NAT; an allow-list is a
 * forwarder in the guest whose connections the daemon carries to the proxy (network.ts, relay.ts).
 * QEMU, virtiofsd and slirp4netns run in the sandbox's host cgroup.
 */
import { traced } from '../../telemetry/trace.js';
import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type {
  Driver,
  DriverCapabilities,
  DriverInfo,
  DriverProcess,
  DriverSandboxSpec,
  DriverState,
  ExecSpec,
  FileToWrite,
  PreparedRun,
  RecoverResult,
  SandboxLimits,
  SandboxUsage,
} from '../driver.js';
import { sandboxUsage } from '../shared/usage.js';
import { RealmError } from '../../util/errors.js';
import { log } from '../../logs/log.js';
import { isSameProcess, processStartTime } from '../../util/proc.js';
import { type CgroupManager, probeCgroups } from '../shared/cgroups.js';
import { SANDBOX_USER } from '../shared/etc.js';
import { AgentConnection } from './agent.js';
import { SLIRP, networkModes } from '../shared/slirp.js';
import { relaySocket } from './network.js';
import { ProxyRelay } from './relay.js';
import { type Kernel, buildInitramfs, ensureKernel } from './assets.js';
import { probeMicrovm } from './probe.js';
import { elfKernel } from './elf-kernel.js';
import { deferred } from './deferred.js';
import { type Accel, MIN_VM_MIB, killByDir, paths, startVm } from './vm.js';
import { sweepOrphans } from './sweep.js';
import { removeTree } from '../../util/safe-tree.js';
import { wholeSandboxRun } from '../shared/whole-sandbox-run.js';
import { tieToDaemon } from '../shared/tie.js';
import { running } from '../shared/process.js';
import { foreignState, isObject, isOptNumber, isOptString, isString } from '../shared/state.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;

/** Where guest kernels are cached, shared by every daemon of the machine (REALM_MICROVM_CACHE, default /var/cache/realm/microvm). */
export const defaultKernelDir = (): string => process.env.REALM_MICROVM_CACHE ?? '/var/cache/realm/microvm';

export interface MicrovmDriverOptions {
  /** Directory for files shared by all VMs (the initramfs, realm's generated /etc). */
  runtimeDir: string;
  /** Where the guest kernel is cached (by package version). */
  kernelDir: string;
  /** Name of the cgroup (under each hierarchy's root) that holds realm's sandboxes. */
  cgroupRoot: string;
  /** Run under TCG emulation when KVM cannot (default: REALM_MICROVM_ALLOW_EMULATION=1). */
  allowEmulation?: boolean;
}

export interface VmState extends DriverState {
  cgroup: string;
  stateDir: string;
  pid?: number;
  startTime?: number;
  limits?: Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'>;
  /** An allow-list sandbox: the proxy socket its forwarder's connections are carried to. */
  proxySocket?: string;
}

/** What the driver readies once: the guest kernel (and the file QEMU boots), the initramfs, how VMs run. */
interface Prepared {
  kernel: Kernel;
  boot: string;
  initrd: string;
  accel: Accel;
  cg: CgroupManager;
}

/** Volumes a microVM may mount (each is a virtiofs share and a virtiofsd of its own). */
const MAX_VOLUMES = 8;

/** How long a killed exec's guest has to report its end (×4 under emulation) before the host stops waiting. */
const KILL_GRACE_MS = 5000;

/** Host tasks a VM's cgroup may hold (QEMU's threads, virtiofsd's): a guest's own processes are not host tasks. */
export const VMM_PIDS = 1024;

/** The guest's memory: the sandbox limit (enforced inside, per exec) plus room for the kernel and agent. */
export const vmMiB = (memoryBytes: number): number => Math.max(MIN_VM_MIB, Math.ceil(memoryBytes / MiB) + 64);

function isVmState(raw: DriverState): raw is VmState {
  const l = raw.limits;
  return (
    isString(raw.cgroup) &&
    isString(raw.stateDir) &&
    isOptNumber(raw.pid) &&
    isOptNumber(raw.startTime) &&
    isOptString(raw.proxySocket) &&
    (l === undefined ||
      (isObject(l) && typeof l.memoryBytes === 'number' && typeof l.pids === 'number' && typeof l.cpus === 'number'))
  );
}

export class MicrovmDriver implements Driver<VmState> {
  readonly name = 'microvm' as const;
  /** Each volume is a virtiofs share with a virtiofsd of its own: at most MAX_VOLUMES. */
  readonly capabilities: DriverCapabilities = {
    networkModes: networkModes(),
    maxVolumes: MAX_VOLUMES,
    perExecMemoryLimit: true,
    perExecCpuLimit: true,
    perExecPidsLimit: true,
    tty: true,
    interactive: true,
    stopStart: true,
    nativePrograms: true,
  };
  private ready: Promise<Prepared> | undefined;
  /** The agent connection of each running VM, by state dir (QEMU serves one client per socket). */
  private readonly conns = new Map<string, AgentConnection>();
  /** The allow-list relays (relay.ts), by state dir. */
  private readonly relays = new Map<string, ProxyRelay>();

  constructor(private readonly opts: MicrovmDriverOptions) {}

  private probe() {
    return probeMicrovm(() => ensureKernel(this.opts.kernelDir), this.opts.allowEmulation);
  }

  async fingerprint(): Promise<DriverInfo> {
    return { ...(await this.probe()).info, capabilities: this.capabilities };
  }

  private prepare(): Promise<Prepared> {
    this.ready ??= (async () => {
      const p = await this.probe();
      if (!p.accel)
        throw new RealmError('DRIVER_UNAVAILABLE', `driver "microvm" cannot run on this host: ${p.info.reason ?? 'unknown'}`);
      const cgp = probeCgroups();
      if (!cgp.ok) throw new Error(cgp.reason);
      const kernel = await ensureKernel(this.opts.kernelDir);
      // root's alone: QEMU opens the kernel and initramfs as root, before it drops to the VMM uid.
      mkdirSync(this.opts.runtimeDir, { recursive: true, mode: 0o700 });
      chmodSync(this.opts.runtimeDir, 0o700);
      const initrd = join(this.opts.runtimeDir, 'initramfs.cpio');
      await buildInitramfs(this.opts.runtimeDir, kernel, initrd);
      // The uncompressed ELF of a cached kernel (a kernel directory of one's own is left as it
      // is): a bzImage decompresses itself in every guest, seconds of an emulated boot.
      const boot = process.env.REALM_MICROVM_KERNEL_DIR ? kernel.vmlinuz : elfKernel(kernel.vmlinuz);
      return { kernel, boot, initrd, accel: p.accel, cg: cgp.manager };
    })();
    this.ready.catch(() => (this.ready = undefined));
    return this.ready;
  }

  /** Refuse what this driver cannot give, before anything is made. */
  private check(spec: DriverSandboxSpec): void {
    if (spec.uid <= 0 || spec.vmmUid <= 0 || spec.vmmUid === spec.uid)
      throw new Error(`the sandbox uid (${spec.uid}) and VMM uid (${spec.vmmUid}) must be two, neither 0`);
    if (spec.network === 'all' && !SLIRP)
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        'network "all" on the microvm driver needs slirp4netns (apt-get install slirp4netns), or use network "none" or an allow-list',
      );
    if (spec.mounts.length > MAX_VOLUMES)
      throw new RealmError('INVALID_REQUEST', `the microvm driver mounts at most ${MAX_VOLUMES} volumes per sandbox; use fewer`);
    if (spec.mounts.reduce((n, m) => n + m.target.length, 0) > 512)
      throw new RealmError(
        'INVALID_REQUEST',
        'the volume paths are too long for the microvm driver (512 bytes in all); use shorter paths',
      );
  }

  decodeState(raw: DriverState): VmState {
    if (!isVmState(raw)) throw foreignState(this.name, raw);
    return raw;
  }

  create(spec: DriverSandboxSpec): Promise<VmState> {
    return traced('microvm.create', { 'realm.sandbox.id': spec.id, 'realm.network': spec.network }, () =>
      this.createSandbox(spec),
    );
  }

  private async createSandbox(spec: DriverSandboxSpec): Promise<VmState> {
    const state: VmState = { cgroup: `${this.opts.cgroupRoot}/${spec.id}`, stateDir: spec.stateDir };
    try {
      this.check(spec);
      await this.prepare();
      // root's alone: QEMU opens its disk, sockets and logs here before it drops to the VMM uid;
      // virtiofsd (root) serves the image, volumes and proxy dir.
      mkdirSync(spec.stateDir, { recursive: true, mode: 0o700 });
      chmodSync(spec.stateDir, 0o700);
      // The home directory: a sparse ext4 image of the disk limit, owned by the sandbox user inside.
      const img = join(spec.stateDir, 'home.img');
      await run('truncate', ['-s', String(Math.max(spec.limits.diskBytes, 4 * MiB)), img]);
      await run('mkfs.ext4', [
        '-q',
        '-F',
        '-m',
        '0',
        '-O',
        '^has_journal',
        '-E',
        `root_owner=${SANDBOX_USER.uid}:${SANDBOX_USER.gid}`,
        img,
      ]);
      return await this.start(spec, state);
    } catch (e) {
      await this.destroy(state).catch(() => undefined);
      throw e;
    }
  }

  async start(spec: DriverSandboxSpec, prev: VmState): Promise<VmState> {
    this.check(spec);
    const { boot, initrd, accel, cg } = await this.prepare();
    const state: VmState = {
      ...prev,
      limits: { memoryBytes: spec.limits.memoryBytes, pids: spec.limits.pids, cpus: spec.limits.cpus },
    };
    if (spec.proxy) state.proxySocket = join(spec.proxy.dir, 'proxy.sock');
    else delete state.proxySocket;
    const dir = join(state.stateDir, 'vm');
    await removeTree(dir); // the VMM's own uid writes there: no link is followed
    mkdirSync(dir, { mode: 0o700 });
    const mem = vmMiB(spec.limits.memoryBytes);
    const vcpus = Math.max(1, Math.min(8, Math.ceil(spec.limits.cpus)));
    const box = cg.create(state.cgroup);
    // The VMM's own overhead (QEMU, its translation cache under TCG, virtiofsd) on top of the guest's RAM.
    box.setLimits({ memoryBytes: (mem + 384) * MiB, pids: VMM_PIDS, cpus: vcpus });
    try {
      const { pid } = await startVm({
        dir,
        kernel: boot,
        initrd,
        share: spec.rootfs === 'host' ? '/usr' : spec.rootfs,
        hostImage: spec.rootfs === 'host',
        homeImage: join(state.stateDir, 'home.img'),
        memoryMiB: mem,
        vcpus,
        tmpBytes: spec.limits.tmpBytes,
        memoryBytes: spec.limits.memoryBytes,
        pids: spec.limits.pids,
        accel,
        procs: box.procsFiles(),
        uid: spec.uid,
        vmmUid: spec.vmmUid,
        volumes: spec.mounts.map((m) => ({ source: m.source, target: m.target, readOnly: m.readOnly })),
        network: spec.network,
        proxy: spec.proxy ? { port: spec.proxy.port, dir: spec.proxy.dir } : undefined,
        hostname: spec.hostname,
      });
      state.pid = pid;
      state.startTime = processStartTime(pid) ?? undefined;
      // The relay is there before the agent says ready: the first exec's connections find it.
      if (state.proxySocket) this.relays.set(state.stateDir, await ProxyRelay.open(relaySocket(dir), state.proxySocket, 10_000));
      const conn = await AgentConnection.open(paths(dir).agent, accel === 'kvm' ? 15_000 : 90_000, () => running(state));
      this.conns.set(state.stateDir, conn);
    } catch (e) {
      // The logs first: teardown removes them.
      const logs = [
        paths(dir).log,
        join(dir, 'qemu.log'),
        paths(dir).fsLog,
        ...spec.mounts.map((_, i) => join(dir, `vol${i}.log`)),
        join(dir, 'netdir.log'),
      ]
        .map(tail)
        .filter(Boolean)
        .join(' ');
      await this.teardown(state).catch(() => undefined);
      throw new Error(`the microVM did not start: ${(e as Error).message}; console: ${logs}`);
    }
    return state;
  }

  private conn(state: VmState): AgentConnection {
    const c = this.conns.get(state.stateDir);
    if (!c?.isOpen || !running(state))
      throw new RealmError('SANDBOX_NOT_RUNNING', "the sandbox's VM is not running; start it again");
    return c;
  }

  exec(state: VmState, spec: ExecSpec): DriverProcess {
    return this.execIn(state, spec, false);
  }

  private execIn(state: VmState, spec: ExecSpec, oneShot: boolean): DriverProcess {
    const conn = this.conn(state);
    // A VM booted by an older realm (re-attached after an upgrade) has an agent without terminals.
    if (spec.tty && !conn.terminals)
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        "this sandbox's VM was started by an older realm whose guest agent has no terminals; stop and start the sandbox",
      );
    const min = (a: number | undefined, b: number | undefined): number | undefined => (a && b ? Math.min(a, b) : (a ?? b));
    const lim = state.limits;
    // A job's attempt: the VM dies with the daemon (QEMU killed from the host, whatever the guest
    // does; tie.ts), tied before the exec is sent.
    const untie = spec.dieWithDaemon ? tieToDaemon(state.pid, state.startTime) : () => undefined;
    const x = conn.exec(
      spec.argv,
      spec.env,
      spec.cwd,
      { pids: min(spec.pids, lim?.pids), memoryBytes: min(spec.memoryBytes, lim?.memoryBytes), cpus: min(spec.cpus, lim?.cpus) },
      oneShot,
      spec.tty,
    );
    // A terminal always takes input (as under namespace); its output is all stdout.
    const stdin = spec.stdin || spec.tty !== undefined;
    if (!stdin) x.stdin.end();
    let ended = false;
    const done = (): void => {
      ended = true;
      untie();
    };
    void x.exit.then(done, done);
    return {
      stdin: stdin ? x.stdin : null,
      stdout: x.stdout,
      stderr: x.stderr,
      signal: (sig) => x.signal(constants.signals[sig]),
      ...(spec.tty ? { resize: (rows: number, cols: number) => x.resize(rows, cols) } : {}),
      kill: async () => {
        if (ended) return;
        x.kill();
        // The guest agent kills the program's cgroup and reports its end; a guest that does not
        // (stalled, or its agent wedged) must not hold the exec's caller for ever: past the grace
        // the exec ends as killed here and the guest's late report is dropped. A one-shot run's
        // VM is destroyed after its program whatever the guest does.
        const grace = (await this.prepare()).accel === 'kvm' ? KILL_GRACE_MS : KILL_GRACE_MS * 4;
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([x.exit.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, grace)))]);
        clearTimeout(timer);
        if (ended) return;
        log.warn(
          `microvm: the guest of ${state.stateDir} did not report the end of a killed program within ${grace / 1000} s; it is taken as killed (the guest may be stalled)`,
        );
        x.abandon();
      },
      wait: () => x.exit,
      release: () => Promise.resolve(),
    };
  }

  async prepareRun(spec: DriverSandboxSpec): Promise<PreparedRun> {
    // A one-shot run is a whole VM of its own, booted ahead and destroyed after.
    const state = await this.create(spec);
    return wholeSandboxRun<VmState>(spec.id, state, {
      running,
      teardown: (s) => this.teardown(s),
      destroy: (s) => this.destroy(s),
      launch: (s, files, exec) => {
        const lim = s.limits;
        if (lim) {
          s.limits = {
            memoryBytes: exec.memoryBytes ?? lim.memoryBytes,
            pids: exec.pids ?? lim.pids,
            cpus: exec.cpus ?? lim.cpus,
          };
          this.conns.get(s.stateDir)?.setLimits(s.limits.memoryBytes, s.limits.pids);
        }
        // Files go in first (through the agent), then the program: one process to the engine.
        const staged = this.writeFiles(s, files);
        return deferred(
          staged.then(() => this.execIn(s, exec, true)),
          exec.stdin,
          () => this.teardown(s),
        );
      },
    });
  }

  update(state: VmState, limits: Pick<SandboxLimits, 'memoryBytes' | 'pids' | 'cpus'>): Promise<void> {
    // The guest's sandbox cgroup takes the new totals at once; the next exec gets them as its own too.
    state.limits = { ...limits };
    if (running(state)) this.conns.get(state.stateDir)?.setLimits(limits.memoryBytes, limits.pids);
    return Promise.resolve();
  }

  async writeFiles(state: VmState, files: FileToWrite[]): Promise<void> {
    for (const f of files) {
      // realm-fs in the guest, as the sandbox user: links planted in the home lead nowhere the user could not write anyway.
      const x = this.conn(state).exec(
        ['/.realm/fs', 'write', `${SANDBOX_USER.home}/${f.path}`, (f.mode ?? 0o644).toString(8), '1'],
        {},
        SANDBOX_USER.home,
        {},
      );
      let err = '';
      x.stderr.on('data', (d: Buffer) => (err += d.toString()));
      x.stdout.resume();
      x.stdin.end(typeof f.content === 'string' ? Buffer.from(f.content) : f.content);
      const r = await x.exit;
      if (r.exitCode !== 0)
        throw new RealmError('INVALID_REQUEST', `cannot write ${f.path} in the sandbox: ${err.trim() || `exit ${r.exitCode}`}`);
    }
  }

  signal(state: VmState, sig: NodeJS.Signals): Promise<void> {
    if (running(state)) this.conns.get(state.stateDir)?.signalAll(constants.signals[sig]);
    return Promise.resolve();
  }

  async stop(state: VmState, timeoutMs: number): Promise<void> {
    const c = this.conns.get(state.stateDir);
    if (c?.isOpen && running(state)) {
      if (timeoutMs > 0) {
        c.signalAll(constants.signals.SIGTERM);
        await new Promise((r) => setTimeout(r, Math.min(timeoutMs, 200)));
      }
      // The agent kills the rest, syncs the home disk and powers off.
      c.halt();
      for (let i = 0; i < 250 && running(state); i++) await new Promise((r) => setTimeout(r, 20));
    }
    await this.teardown(state);
  }

  /** Kill the VM and its helpers and remove the cgroup; the state dir (home disk) stays. */
  private async teardown(state: VmState): Promise<void> {
    this.conns.get(state.stateDir)?.close();
    this.conns.delete(state.stateDir);
    this.relays.get(state.stateDir)?.close();
    this.relays.delete(state.stateDir);
    if (state.pid && state.startTime && isSameProcess(state.pid, state.startTime)) {
      try {
        process.kill(state.pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    killByDir(state.stateDir);
    const cgp = probeCgroups();
    if (cgp.ok) {
      const box = cgp.manager.open(state.cgroup);
      if (box.exists()) {
        await box.kill();
        box.remove();
      }
    }
    await removeTree(join(state.stateDir, 'vm'));
    delete state.pid;
    delete state.startTime;
  }

  async destroy(state: VmState): Promise<void> {
    await this.teardown(state);
    await removeTree(state.stateDir);
  }

  /** Its host cgroup's figures: the VM as the host sees it (QEMU and its guest's memory). */
  async usage(state: VmState): Promise<SandboxUsage> {
    const { cg } = await this.prepare();
    return sandboxUsage(cg.open(state.cgroup), {});
  }

  async recover(state: VmState): Promise<RecoverResult> {
    const { accel } = await this.prepare();
    if (running(state)) {
      this.conns.get(state.stateDir)?.close();
      this.relays.get(state.stateDir)?.close();
      const dir = join(state.stateDir, 'vm');
      try {
        // The forwarder's connections of the daemon before are gone with it; the relay starts a new session.
        if (state.proxySocket) this.relays.set(state.stateDir, await ProxyRelay.open(relaySocket(dir), state.proxySocket, 5000));
        this.conns.set(
          state.stateDir,
          await AgentConnection.open(paths(dir).agent, accel === 'kvm' ? 5000 : 20_000, () => running(state)),
        );
        return 'running';
      } catch {
        /* a VM whose agent does not answer is as good as dead */
      }
    }
    await this.teardown(state);
    return 'stopped';
  }

  /**
   * The daemon lets go of its VMs (they keep running): close each agent connection and relay, so
   * the next daemon on this data dir, in this process or another, can attach to them in `recover`.
   */
  close(): Promise<void> {
    for (const c of this.conns.values()) c.close();
    for (const r of this.relays.values()) r.close();
    this.conns.clear();
    this.relays.clear();
    return Promise.resolve();
  }

  sweep(known: Set<string>, stateRoot: string): Promise<string[]> {
    return sweepOrphans(known, stateRoot, this.opts.cgroupRoot);
  }
}

function tail(path: string): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-6).join(' | ').slice(0, 1500);
  } catch {
    return '';
  }
}
