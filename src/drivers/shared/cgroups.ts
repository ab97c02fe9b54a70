/**
 * Control groups, v1 and v2 behind one interface (cgroups/types.ts), picked at run time.
 *
 * A sandbox owns one cgroup (`<root>/<id>`) with children: `init` for its PID 1 and one per exec.
 * Limits are set on the sandbox and again on each exec; OOM kills are read from the kernel's
 * counters (v1 `memory.oom_control`, v2 `memory.events`), never guessed from exit codes.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readMounts } from './cgroups/fs.js';
import type { CgroupManager } from './cgroups/types.js';
import { ManagerV1, V1_CONTROLLERS, type V1Controller } from './cgroups/v1.js';
import { ManagerV2 } from './cgroups/v2.js';

export type { Cgroup, CgroupLimits, CgroupManager, CgroupPlan, CgroupStats, CgroupUsage } from './cgroups/types.js';

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
  if (!v2usable || !v2)
    return { ok: false, reason: 'cgroup v2 was asked for (REALM_CGROUP=v2) but offers no memory/pids/cpu controllers' };
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
