/** cgroup v1: one hierarchy per controller (memory, pids, cpu, cpuacct, freezer). */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  readRefaults,
  killAll,
  killChildrenFirst,
  parentOf,
  readNum,
  readPids,
  readStatFiles,
  rmTree,
  type StatFile,
  statsReader,
  subdirs,
  tryRmdirs,
  tryWrite,
  waitEmpty,
} from './fs.js';
import {
  type Cgroup,
  type CgroupLimits,
  type CgroupManager,
  type CgroupPlan,
  type CgroupStats,
  type CgroupUsage,
  type StatsReader,
  changedLimits,
  mergeLimits,
} from './types.js';

function v1Figures([cpuNs = 0, memoryPeakBytes = 0, oomKills = 0]: number[]): CgroupStats {
  return { cpuNs, memoryPeakBytes, oomKills };
}

export const V1_CONTROLLERS = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'] as const;
export type V1Controller = (typeof V1_CONTROLLERS)[number];

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
  /** What this object last wrote; a fresh object (open()) writes everything it is given. */
  private applied: CgroupLimits = {};
  setLimits(limits: CgroupLimits): void {
    const l = changedLimits(this.applied, limits);
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
    for (const w of this.otherWrites(l)) {
      if (w.optional) tryWrite(w.file, w.value);
      else writeFileSync(w.file, w.value);
    }
    this.applied = mergeLimits(this.applied, limits);
  }
  /** The pids and cpu files for these limits (memory has its own order, above). */
  otherWrites(l: CgroupLimits): CgroupPlan['writes'] {
    const out: CgroupPlan['writes'] = [];
    if (l.pids) out.push({ file: join(this.dir('pids'), 'pids.max'), value: String(l.pids) });
    if (l.cpus) {
      const cpu = this.dir('cpu');
      out.push({ file: join(cpu, 'cpu.cfs_period_us'), value: '100000' });
      out.push({ file: join(cpu, 'cpu.cfs_quota_us'), value: String(Math.max(1000, Math.round(l.cpus * 100000))) });
    }
    const cpus = l.cpus ?? (l.cpuShare !== undefined ? this.applied.cpus : undefined);
    if (cpus) {
      // Under contention, CPU is shared in proportion to what each sandbox was given (times its share).
      const shares = Math.max(2, Math.round(cpus * 1024 * (l.cpuShare ?? this.applied.cpuShare ?? 1)));
      out.push({ file: join(this.dir('cpu'), 'cpu.shares'), value: String(shares), optional: true });
    }
    return out;
  }
  /** A fresh cgroup's steps (its memory limits start at the maximum, so memory goes before memsw). */
  plan(limits: CgroupLimits): CgroupPlan {
    const mem = this.dir('memory');
    const writes: CgroupPlan['writes'] = [];
    if (limits.memoryBytes) {
      const v = String(limits.memoryBytes);
      writes.push(
        { file: join(mem, 'memory.limit_in_bytes'), value: v },
        { file: join(mem, 'memory.memsw.limit_in_bytes'), value: v, optional: true },
        { file: join(mem, 'memory.swappiness'), value: '0', optional: true },
      );
    }
    writes.push(...this.otherWrites(limits));
    return {
      dirs: this.dirs(),
      writes,
      procs: this.procsFiles(),
      stats: {
        cpu: join(this.dir('cpuacct'), 'cpuacct.usage'),
        peak: join(mem, 'memory.max_usage_in_bytes'),
        oom: `${join(mem, 'memory.oom_control')}:oom_kill`,
      },
      cpuNsPerUnit: 1,
    };
  }
  refaults(): { bytes: number; majorFaults: number } {
    return readRefaults(join(this.dir('memory'), 'memory.stat'));
  }
  usage(): CgroupUsage {
    const mem = this.dir('memory');
    return {
      cpuNs: readNum(join(this.dir('cpuacct'), 'cpuacct.usage')),
      memoryBytes: readNum(join(mem, 'memory.usage_in_bytes')),
      memoryPeakBytes: readNum(join(mem, 'memory.max_usage_in_bytes')),
      pids: readNum(join(this.dir('pids'), 'pids.current')),
    };
  }
  private statFiles(): StatFile[] {
    const mem = this.dir('memory');
    return [
      { file: join(this.dir('cpuacct'), 'cpuacct.usage') },
      { file: join(mem, 'memory.max_usage_in_bytes') },
      { file: join(mem, 'memory.oom_control'), key: 'oom_kill' },
    ];
  }
  stats(): CgroupStats {
    return v1Figures(readStatFiles(this.statFiles()));
  }
  openStats(): StatsReader {
    return statsReader(this.statFiles(), v1Figures);
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
  tryRemove(): boolean {
    return tryRmdirs(this.dirs());
  }
  remove(): void {
    for (const d of this.dirs()) rmTree(d);
  }
}

export class ManagerV1 implements CgroupManager {
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
  /** Parents made already. */
  private readonly made = new Set<string>();
  plan(rel: string, limits: CgroupLimits): CgroupPlan {
    const parent = rel.split('/').slice(0, -1).join('/');
    if (parent && !this.made.has(parent)) {
      new CgroupV1(this.mounts, parent).make();
      this.made.add(parent);
    }
    return new CgroupV1(this.mounts, rel).plan(limits);
  }
  children(rel: string): string[] {
    return subdirs(join(this.mounts.memory, rel)).map((c) => join(rel, c));
  }
}
