/** The cgroup interface the driver uses; v1 and v2 implement it. */
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
