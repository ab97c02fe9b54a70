/** cgroup v2: one unified hierarchy; controllers enabled down the path through subtree_control. */
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  readRefaults,
  killAll,
  killChildrenFirst,
  readKeyed,
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

/** The figures of cpu.stat's usage_usec, memory.peak (before Linux 5.19: none, memory.current then), memory.events' oom_kill. */
function v2Figures([usageUsec = 0, peak = 0, current = 0, oomKills = 0]: number[]): CgroupStats {
  return { cpuNs: usageUsec * 1000, memoryPeakBytes: peak || current, oomKills };
}

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
  /** What this object last wrote; a fresh object (open()) writes everything it is given. */
  private applied: CgroupLimits = {};
  setLimits(limits: CgroupLimits): void {
    for (const w of this.writes(changedLimits(this.applied, limits))) {
      if (w.optional) tryWrite(w.file, w.value);
      else writeFileSync(w.file, w.value);
    }
    this.applied = mergeLimits(this.applied, limits);
  }
  private writes(l: CgroupLimits): CgroupPlan['writes'] {
    const out: CgroupPlan['writes'] = [];
    if (l.memoryBytes)
      out.push(
        { file: join(this.dir, 'memory.max'), value: String(l.memoryBytes) },
        { file: join(this.dir, 'memory.swap.max'), value: '0', optional: true },
      );
    if (l.pids) out.push({ file: join(this.dir, 'pids.max'), value: String(l.pids) });
    if (l.cpus) out.push({ file: join(this.dir, 'cpu.max'), value: `${Math.max(1000, Math.round(l.cpus * 100000))} 100000` });
    const cpus = l.cpus ?? (l.cpuShare !== undefined ? this.applied.cpus : undefined);
    if (cpus) {
      const share = l.cpuShare ?? this.applied.cpuShare ?? 1;
      out.push({
        file: join(this.dir, 'cpu.weight'),
        value: String(Math.min(10000, Math.max(1, Math.round(cpus * 100 * share)))),
        optional: true,
      });
    }
    return out;
  }
  /** A fresh cgroup's steps; its ancestors get their controllers enabled now (once). */
  plan(limits: CgroupLimits, enabled: Set<string>): CgroupPlan {
    const parent = this.rel.split('/').slice(0, -1).join('/');
    if (!enabled.has(parent)) {
      new CgroupV2(this.mount, parent).make();
      tryWrite(join(this.mount, parent, 'cgroup.subtree_control'), '+memory +pids +cpu');
      enabled.add(parent);
    }
    return {
      dirs: [this.dir],
      writes: this.writes(limits),
      procs: this.procsFiles(),
      stats: {
        cpu: `${join(this.dir, 'cpu.stat')}:usage_usec`,
        peak: join(this.dir, 'memory.peak'),
        oom: `${join(this.dir, 'memory.events')}:oom_kill`,
      },
      cpuNsPerUnit: 1000,
    };
  }
  refaults(): { bytes: number; majorFaults: number } {
    return readRefaults(join(this.dir, 'memory.stat'));
  }
  usage(): CgroupUsage {
    const peak = join(this.dir, 'memory.peak');
    return {
      cpuNs: readKeyed(join(this.dir, 'cpu.stat'), 'usage_usec') * 1000,
      memoryBytes: readNum(join(this.dir, 'memory.current')),
      memoryPeakBytes: existsSync(peak) ? readNum(peak) : null,
      pids: readNum(join(this.dir, 'pids.current')),
    };
  }
  private statFiles(): StatFile[] {
    return [
      { file: join(this.dir, 'cpu.stat'), key: 'usage_usec' },
      { file: join(this.dir, 'memory.peak') },
      { file: join(this.dir, 'memory.current') },
      { file: join(this.dir, 'memory.events'), key: 'oom_kill' },
    ];
  }
  stats(): CgroupStats {
    return v2Figures(readStatFiles(this.statFiles()));
  }
  openStats(): StatsReader {
    return statsReader(this.statFiles(), v2Figures);
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
  tryRemove(): boolean {
    return tryRmdirs([this.dir]);
  }
  remove(): void {
    rmTree(this.dir);
  }
}

export class ManagerV2 implements CgroupManager {
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
  /** Parents whose controllers are enabled already. */
  private readonly enabled = new Set<string>();
  plan(rel: string, limits: CgroupLimits): CgroupPlan {
    return new CgroupV2(this.mount, rel).plan(limits, this.enabled);
  }
  children(rel: string): string[] {
    return subdirs(join(this.mount, rel)).map((c) => join(rel, c));
  }
}
