/** The cgroup interface the driver uses; v1 and v2 implement it. */
export interface CgroupLimits {
  memoryBytes?: number | undefined;
  pids?: number | undefined;
  /** CPU quota in CPUs (1.5 = one and a half cores). */
  cpus?: number | undefined;
  /**
   * The CPU weight under contention relative to `cpus` (written with it): 1 (the default) shares
   * CPU in proportion to the quota; below 1 the cgroup yields to the others while they want CPU,
   * and still takes what they leave (the gateway's for an app whose requests run into their deadline).
   */
  cpuShare?: number | undefined;
}

/**
 * The limits of `next` that differ from those this cgroup object last applied: a one-shot run's
 * sandbox is made with the usual limits, and a run that asks for the same ones then writes no
 * cgroup file on its way to the program.
 */
export function changedLimits(applied: CgroupLimits, next: CgroupLimits): CgroupLimits {
  return {
    memoryBytes: next.memoryBytes !== applied.memoryBytes ? next.memoryBytes : undefined,
    pids: next.pids !== applied.pids ? next.pids : undefined,
    cpus: next.cpus !== applied.cpus ? next.cpus : undefined,
    cpuShare: next.cpuShare !== applied.cpuShare ? next.cpuShare : undefined,
  };
}

/** `applied` after `next` was written (a limit left out stays as it was). */
export function mergeLimits(applied: CgroupLimits, next: CgroupLimits): CgroupLimits {
  return {
    memoryBytes: next.memoryBytes ?? applied.memoryBytes,
    pids: next.pids ?? applied.pids,
    cpus: next.cpus ?? applied.cpus,
    cpuShare: next.cpuShare ?? applied.cpuShare,
  };
}

export interface CgroupStats {
  cpuNs: number;
  memoryPeakBytes: number;
  oomKills: number;
}

/** A cgroup's figures read again and again from files opened once (see `Cgroup.openStats`). */
export interface StatsReader {
  read(): CgroupStats;
  /** Close its files (a reader not closed keeps them open). */
  close(): void;
}

/** What a cgroup uses now, for live stats (`GET /v1/sandboxes/{id}/stats`). */
export interface CgroupUsage {
  cpuNs: number;
  memoryBytes: number;
  /** null: the kernel keeps no peak here (cgroup v2 before Linux 5.19). */
  memoryPeakBytes: number | null;
  pids: number;
}

export interface Cgroup {
  readonly rel: string;
  /** Figures now (a missing file reads 0: a cgroup being removed). */
  usage(): CgroupUsage;
  /** The `cgroup.procs` files a process writes its pid to, to join this cgroup everywhere. */
  procsFiles(): string[];
  setLimits(limits: CgroupLimits): void;
  stats(): CgroupStats;
  /**
   * The files `stats()` reads, opened now: a one-shot run's figures are then read at its end
   * without opening them. Open once the cgroup exists; a file missing then reads 0.
   */
  openStats(): StatsReader;
  /**
   * Bytes this cgroup has read back in after evicting them while still in use (the kernel's
   * workingset refaults), and its major page faults (mapped pages, e.g. code, read back in):
   * what a program squeezed under its memory limit does instead of being OOM-killed.
   */
  refaults(): { bytes: number; majorFaults: number };
  /** Pids in this cgroup and its descendants. */
  pids(): number[];
  /** SIGKILL everything inside, including processes that forked, daemonized or called setsid. */
  kill(): Promise<void>;
  /** Remove this cgroup and its children; processes must be gone. */
  remove(): void;
  /** Remove this cgroup if it is already empty and has no children (cheap); false when it is not. */
  tryRemove(): boolean;
  exists(): boolean;
}

/**
 * Making a cgroup with limits, as steps a helper carries out (realm-helper sandbox --mkdir,
 * --write, --cgroup, --stat) so a one-shot sandbox's cgroup costs the daemon no file operation.
 */
export interface CgroupPlan {
  /** Directories to create, parents first (their parents exist). */
  dirs: string[];
  /** Files to write after creating them, in order; an optional one may be missing. */
  writes: { file: string; value: string; optional?: boolean }[];
  /** The `cgroup.procs` files to join. */
  procs: string[];
  /** Where the figures are: `FILE` or `FILE:KEY` (a "KEY N" line). */
  stats: { cpu: string; peak: string; oom: string };
  /** Nanoseconds per unit of the cpu figure. */
  cpuNsPerUnit: number;
}

export interface CgroupManager {
  readonly version: 1 | 2;
  /** Where each controller lives, for `realm doctor`. */
  describe(): string;
  create(rel: string): Cgroup;
  /** The steps that would create `rel` with these limits (nothing is done here but making its parents ready). */
  plan(rel: string, limits: CgroupLimits): CgroupPlan;
  open(rel: string): Cgroup;
  /** Relative paths of the direct children of `rel`. */
  children(rel: string): string[];
}
