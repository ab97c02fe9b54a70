/**
 * Control groups, v1 and v2 behind one interface, picked at run time.
 *
 * A sandbox owns one cgroup (`<root>/<id>`) with children: `init` for its PID 1 and one per exec.
 * Limits are set on the sandbox and again on each exec; OOM kills are read from the kernel's
 * counters (v1 `memory.oom_control`, v2 `memory.events`), never guessed from exit codes.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CgroupLimits {
  memoryBytes?: number | undefined;
  pids?: number | undefined;
  /** CPU quota in CPUs (1.5 = one and a half cores). */
  cpus?: number | undefined;
}

export interface CgroupStats {
  cpuNs: number;
  memoryPeakBytes: number;
  oomKills: number;
}

export interface Cgroup {
  readonly rel: string;
  /** The `cgroup.procs` files a process writes its pid to, to join this cgroup everywhere. */
  procsFiles(): string[];
  setLimits(limits: CgroupLimits): void;
  stats(): CgroupStats;
  /** Pids in this cgroup and its descendants. */
  pids(): number[];
  /** SIGKILL everything inside, including processes that forked, daemonized or called setsid. */
  kill(): Promise<void>;
  /** Remove this cgroup and its children; processes must be gone. */
  remove(): void;
  exists(): boolean;
}

export interface CgroupManager {
  readonly version: 1 | 2;
  /** Where each controller lives, for `realm doctor`. */
  describe(): string;
  create(rel: string): Cgroup;
  open(rel: string): Cgroup;
  /** Relative paths of the direct children of `rel`. */
  children(rel: string): string[];
}

interface Mount {
  point: string;
  type: string;
  options: string[];
}

function readMounts(): Mount[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      return { point: (f[1] ?? '').replace(/\\040/g, ' '), type: f[2] ?? '', options: (f[3] ?? '').split(',') };
    });
}

function readNum(file: string): number {
  try {
    const v = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

function readKeyed(file: string, key: string): number {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const [k, v] = line.split(/\s+/);
      if (k === key) return Number(v) || 0;
    }
  } catch {
    /* missing file: counter not supported here */
  }
  return 0;
}

function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    /* optional knob absent on this kernel */
  }
}

function readPids(file: string): number[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return [];
  }
}

function parentOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return 0;
  }
}

/**
 * Kill the processes whose parent is in the same set first, and wait a moment for their parents
 * to reap them: killed together, a parent (bwrap) can die before its child (the sandbox's init),
 * which then lingers as a zombie of the host's PID 1. The roots go with the final sweep.
 */
async function killChildrenFirst(pids: number[]): Promise<void> {
  const set = new Set(pids);
  const inner = pids.filter((p) => set.has(parentOf(p)));
  if (inner.length === 0) return;
  killAll(inner);
  for (let i = 0; i < 25 && inner.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(2);
}

function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function rmTree(dir: string): void {
  for (const c of subdirs(dir)) rmTree(join(dir, c));
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

async function waitEmpty(pids: () => number[], what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (pids().length === 0) return;
    await sleep(i < 20 ? 2 : 20);
  }
  throw new Error(`processes in ${what} did not exit after SIGKILL`);
}

// ---------------- v1 ----------------

const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const;
type V1Controller = (typeof V1_CONTROLLERS)[number];

class CgroupV1 implements Cgroup {
  constructor(
    private readonly mounts: Record<V1Controller, string>,
    readonly rel: string,
  ) {}
  private dir(c: V1Controller): string {
    return join(this.mounts[c], this.rel);
  }
  private dirs(): string[] {
    return [...new Set(V1_CONTROLLERS.map((c) => this.dir(c)))];
  }
  make(): void {
    for (const d of this.dirs()) mkdirSync(d, { recursive: true });
  }
  exists(): boolean {
    return existsSync(this.dir('memory'));
  }
  procsFiles(): string[] {
    return this.dirs().map((d) => join(d, 'cgroup.procs'));
  }
  setLimits(l: CgroupLimits): void {
    const mem = this.dir('memory');
    if (l.memoryBytes) {
      const v = String(l.memoryBytes);
      // Same cap on memory+swap so a limit cannot be dodged by swapping. The kernel wants
      // memsw >= memory at every step: lower memory first, raise memsw first.
      try {
        writeFileSync(join(mem, 'memory.limit_in_bytes'), v);
      } catch {
        tryWrite(join(mem, 'memory.memsw.limit_in_bytes'), v);
        writeFileSync(join(mem, 'memory.limit_in_bytes'), v);
      }
      tryWrite(join(mem, 'memory.memsw.limit_in_bytes'), v);
      tryWrite(join(mem, 'memory.swappiness'), '0');
    }
    if (l.pids) writeFileSync(join(this.dir('pids'), 'pids.max'), String(l.pids));
    if (l.cpus) {
      const cpu = this.dir('cpu');
      writeFileSync(join(cpu, 'cpu.cfs_period_us'), '100000');
      writeFileSync(join(cpu, 'cpu.cfs_quota_us'), String(Math.max(1000, Math.round(l.cpus * 100000))));
      // Under contention, CPU is shared in proportion to what each sandbox was given.
      tryWrite(join(cpu, 'cpu.shares'), String(Math.max(2, Math.round(l.cpus * 1024))));
    }
  }
  stats(): CgroupStats {
    const mem = this.dir('memory');
    return {
      cpuNs: readNum(join(this.dir('cpuacct'), 'cpuacct.usage')),
      memoryPeakBytes: readNum(join(mem, 'memory.max_usage_in_bytes')),
      oomKills: readKeyed(join(mem, 'memory.oom_control'), 'oom_kill'),
    };
  }
  pids(): number[] {
    const out: number[] = [];
    const walk = (d: string): void => {
      out.push(...readPids(join(d, 'cgroup.procs')));
      for (const c of subdirs(d)) walk(join(d, c));
    };
    // Every controller: a process can only be in one cgroup per hierarchy, but we joined several.
    for (const d of this.dirs()) walk(d);
    return [...new Set(out)];
  }
  async kill(): Promise<void> {
    if (!this.exists() || this.pids().length === 0) return;
    const freezer = join(this.dir('freezer'), 'freezer.state');
    // Freeze first so nothing can fork between reading the pid list and the kill.
    tryWrite(freezer, 'FROZEN');
    for (let i = 0; i < 200; i++) {
      let state = '';
      try {
        state = readFileSync(freezer, 'utf8').trim();
      } catch {
        break;
      }
      if (state === 'FROZEN') break;
      await sleep(1);
    }
    const pids = this.pids();
    const set = new Set(pids);
    // Frozen tasks take SIGKILL once thawed; roots (whose parent is outside) stay alive for now
    // so they can reap their children.
    killAll(pids.filter((p) => set.has(parentOf(p))));
    tryWrite(freezer, 'THAWED');
    await killChildrenFirst(pids);
    killAll(this.pids());
    await waitEmpty(() => {
      const left = this.pids();
      killAll(left);
      return left;
    }, this.rel);
  }
  remove(): void {
    for (const d of this.dirs()) rmTree(d);
  }
}

class ManagerV1 implements CgroupManager {
  readonly version = 1 as const;
  constructor(private readonly mounts: Record<V1Controller, string>) {}
  describe(): string {
    return V1_CONTROLLERS.map((c) => `${c}=${this.mounts[c]}`).join(' ');
  }
  create(rel: string): Cgroup {
    const cg = new CgroupV1(this.mounts, rel);
    cg.make();
    return cg;
  }
  open(rel: string): Cgroup {
    return new CgroupV1(this.mounts, rel);
  }
  children(rel: string): string[] {
    return subdirs(join(this.mounts.memory, rel)).map((c) => join(rel, c));
  }
}

// ---------------- v2 ----------------

class CgroupV2 implements Cgroup {
  constructor(
    private readonly mount: string,
    readonly rel: string,
  ) {}
  private get dir(): string {
    return join(this.mount, this.rel);
  }
  exists(): boolean {
    return existsSync(this.dir);
  }
  make(): void {
    // Controllers must be enabled in every ancestor's subtree_control for the leaf to get them.
    const parts = this.rel.split('/');
    let cur = this.mount;
    for (const p of parts) {
      tryWrite(join(cur, 'cgroup.subtree_control'), '+memory +pids +cpu');
      cur = join(cur, p);
      mkdirSync(cur, { recursive: true });
    }
  }
  procsFiles(): string[] {
    return [join(this.dir, 'cgroup.procs')];
  }
  setLimits(l: CgroupLimits): void {
    if (l.memoryBytes) {
      writeFileSync(join(this.dir, 'memory.max'), String(l.memoryBytes));
      tryWrite(join(this.dir, 'memory.swap.max'), '0');
    }
    if (l.pids) writeFileSync(join(this.dir, 'pids.max'), String(l.pids));
    if (l.cpus) {
      writeFileSync(join(this.dir, 'cpu.max'), `${Math.max(1000, Math.round(l.cpus * 100000))} 100000`);
      tryWrite(join(this.dir, 'cpu.weight'), String(Math.min(10000, Math.max(1, Math.round(l.cpus * 100)))));
    }
  }
  stats(): CgroupStats {
    const peak = readNum(join(this.dir, 'memory.peak'));
    return {
      cpuNs: readKeyed(join(this.dir, 'cpu.stat'), 'usage_usec') * 1000,
      memoryPeakBytes: peak || readNum(join(this.dir, 'memory.current')),
      oomKills: readKeyed(join(this.dir, 'memory.events'), 'oom_kill'),
    };
  }
  pids(): number[] {
    const out: number[] = [];
    const walk = (d: string): void => {
      out.push(...readPids(join(d, 'cgroup.procs')));
      for (const c of subdirs(d)) walk(join(d, c));
    };
    walk(this.dir);
    return out;
  }
  async kill(): Promise<void> {
    if (!this.exists() || this.pids().length === 0) return;
    await killChildrenFirst(this.pids());
    const killFile = join(this.dir, 'cgroup.kill');
    if (existsSync(killFile)) writeFileSync(killFile, '1');
    else {
      tryWrite(join(this.dir, 'cgroup.freeze'), '1');
      killAll(this.pids());
      tryWrite(join(this.dir, 'cgroup.freeze'), '0');
    }
    await waitEmpty(() => {
      const left = this.pids();
      killAll(left);
      return left;
    }, this.rel);
  }
  remove(): void {
    rmTree(this.dir);
  }
}

class ManagerV2 implements CgroupManager {
  readonly version = 2 as const;
  constructor(private readonly mount: string) {}
  describe(): string {
    return `unified=${this.mount}`;
  }
  create(rel: string): Cgroup {
    const cg = new CgroupV2(this.mount, rel);
    cg.make();
    return cg;
  }
  open(rel: string): Cgroup {
    return new CgroupV2(this.mount, rel);
  }
  children(rel: string): string[] {
    return subdirs(join(this.mount, rel)).map((c) => join(rel, c));
  }
}

export type CgroupProbe = { ok: true; manager: CgroupManager } | { ok: false; reason: string };

/**
 * Find a usable cgroup hierarchy: v2 when its root offers memory, pids and cpu; else v1 when
 * memory, pids, cpu, cpuacct and freezer are mounted. `REALM_CGROUP=v1|v2` forces one.
 */
export function probeCgroups(force = process.env.REALM_CGROUP): CgroupProbe {
  const mounts = readMounts();
  const v2 = mounts.find((m) => m.type === 'cgroup2');
  const v2ok = v2 ? readFileSafe(join(v2.point, 'cgroup.controllers')).split(/\s+/) : [];
  const v2usable = !!v2 && ['memory', 'pids', 'cpu'].every((c) => v2ok.includes(c));
  const v1: Partial<Record<V1Controller, string>> = {};
  for (const m of mounts) {
    if (m.type !== 'cgroup') continue;
    for (const c of V1_CONTROLLERS) if (m.options.includes(c)) v1[c] = m.point;
  }
  const v1missing = V1_CONTROLLERS.filter((c) => !v1[c]);
  if (force === 'v1' || (!v2usable && force !== 'v2')) {
    if (v1missing.length === 0) return { ok: true, manager: new ManagerV1(v1 as Record<V1Controller, string>) };
    return {
      ok: false,
      reason: v2
        ? `cgroup v2 at ${v2.point} has no memory/pids/cpu controllers and cgroup v1 lacks ${v1missing.join(', ')}`
        : `no cgroup v2 mount and cgroup v1 lacks ${v1missing.join(', ')}`,
    };
  }
  if (!v2usable || !v2) return { ok: false, reason: 'cgroup v2 was asked for (REALM_CGROUP=v2) but offers no memory/pids/cpu controllers' };
  return { ok: true, manager: new ManagerV2(v2.point) };
}

function readFileSafe(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Moving a process between cgroups waits for an RCU grace period (several ms, up to 15 here)
 * unless the kernel favours dynamic cgroup changes. That flag is global and set by mounting any
 * cgroup2 hierarchy with `favordynmods` (Linux ≥ 6.0), so realm sets it on the cgroup2 mount —
 * also on hybrid hosts where the controllers live in v1. `REALM_CGROUP_FAVORDYNMODS=0` leaves it.
 * @returns what was found or done, for `realm doctor`.
 */
export async function favorDynmods(remount: (point: string) => Promise<boolean>): Promise<string> {
  if (process.env.REALM_CGROUP_FAVORDYNMODS === '0') return 'left alone (REALM_CGROUP_FAVORDYNMODS=0)';
  const v2 = readMounts().find((m) => m.type === 'cgroup2');
  if (!v2) return 'no cgroup2 mount';
  if (v2.options.includes('favordynmods')) return `on (${v2.point})`;
  return (await remount(v2.point)) ? `turned on (${v2.point})` : 'not supported by this kernel';
}
