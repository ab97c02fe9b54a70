/**
 * A sandbox's usage read from its cgroup at scrape time: three small files per sandbox, no
 * walk of its tree (the counters of a cgroup include its children's).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readKeyed, readNum } from '../drivers/shared/cgroups/fs.js';

const MOUNT = '/sys/fs/cgroup';
const unified = process.env.REALM_CGROUP !== 'v1' && existsSync(join(MOUNT, 'cgroup.controllers'));

export interface CgroupUsage {
  memoryBytes: number;
  cpuSeconds: number;
  pids: number;
}

/** Usage of the cgroup `rel` (under each hierarchy's root), or undefined when it is gone. */
export function cgroupUsage(rel: string): CgroupUsage | undefined {
  if (unified) {
    const dir = join(MOUNT, rel);
    if (!existsSync(dir)) return undefined;
    return {
      memoryBytes: readNum(join(dir, 'memory.current')),
      cpuSeconds: readKeyed(join(dir, 'cpu.stat'), 'usage_usec') / 1e6,
      pids: readNum(join(dir, 'pids.current')),
    };
  }
  const memory = join(MOUNT, 'memory', rel);
  if (!existsSync(memory)) return undefined;
  return {
    memoryBytes: readNum(join(memory, 'memory.usage_in_bytes')),
    cpuSeconds: readNum(join(MOUNT, 'cpuacct', rel, 'cpuacct.usage')) / 1e9,
    pids: readNum(join(MOUNT, 'pids', rel, 'pids.current')),
  };
}
