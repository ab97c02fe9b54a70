/**
 * A running sandbox's live figures (`GET /v1/sandboxes/{id}/stats`): what its driver reads from
 * the host (cgroup, writable layer, network namespace) beside its limits. CPU % is over the time
 * between two samples: the caller's interval (a stream) or a short one of its own (one read).
 *
 *   const first = await sandboxStats(rec, driver);
 *   const next = await sandboxStats(rec, driver, first); // next.cpu.percent over the time between
 */
import type { Driver } from '../drivers/driver.js';
import type { SandboxRecord } from '../store/store.js';
import { RealmError } from '../util/errors.js';

export interface SandboxStats {
  id: string;
  /** ISO 8601, when the figures were read. */
  time: string;
  driver: string;
  /** `seconds` used since the sandbox started; `percent` of one core over `intervalMs` (null on a first sample). */
  cpu: { seconds: number; percent: number | null; intervalMs: number | null; limitCpus: number };
  /** `peakBytes` null: the host's cgroups keep no peak. */
  memory: { bytes: number; peakBytes: number | null; limitBytes: number };
  pids: { current: number; limit: number };
  /** `usedBytes` null: the driver cannot tell. */
  disk: { usedBytes: number | null; limitBytes: number };
  /** null: the driver cannot tell (no interface counters of its own to read). */
  network: { rxBytes: number; txBytes: number } | null;
}

/** The figures of `rec` now; `prev`: an earlier sample of it, for CPU %. */
export async function sandboxStats(rec: SandboxRecord, driver: Driver, prev?: SandboxStats): Promise<SandboxStats> {
  if (rec.status !== 'running')
    throw new RealmError('SANDBOX_NOT_RUNNING', `sandbox ${rec.id} is ${rec.status}; its figures are read only while it runs`);
  if (!driver.usage)
    throw new RealmError('STATS_UNAVAILABLE', `the ${rec.driver} driver cannot tell what a sandbox uses on this host`);
  const at = Date.now();
  const u = await driver.usage(rec.driverState);
  const seconds = u.cpuNs / 1e9;
  const intervalMs = prev ? at - Date.parse(prev.time) : null;
  return {
    id: rec.id,
    time: new Date(at).toISOString(),
    driver: rec.driver,
    cpu: {
      seconds,
      percent:
        prev && intervalMs && intervalMs > 0
          ? Math.round(Math.max(0, ((seconds - prev.cpu.seconds) * 1000) / intervalMs) * 1000) / 10
          : null,
      intervalMs,
      limitCpus: rec.limits.cpus,
    },
    memory: { bytes: u.memoryBytes, peakBytes: u.memoryPeakBytes, limitBytes: rec.limits.memoryBytes },
    pids: { current: u.pids, limit: rec.limits.pids },
    disk: { usedBytes: u.diskBytes, limitBytes: rec.limits.diskBytes },
    network: u.netRxBytes === null || u.netTxBytes === null ? null : { rxBytes: u.netRxBytes, txBytes: u.netTxBytes },
  };
}
