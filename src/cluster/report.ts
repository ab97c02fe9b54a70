/** This node's report of itself: what it can run, how big it is and how busy. */
import { availableParallelism, hostname, loadavg, totalmem } from 'node:os';
import type { Engine } from '../engine/engine.js';
import { VERSION } from '../version.js';
import type { NodeReport } from './types.js';

export const PLATFORM = `${process.platform}/${process.arch === 'x64' ? 'x86_64' : process.arch}`;

export async function nodeReport(engine: Engine, startedAt: string, jobSlots: number, leaseTtlMs?: number): Promise<NodeReport> {
  const drivers = (await engine.fingerprint()).filter((d) => d.available).map((d) => d.name);
  return {
    version: VERSION,
    platform: PLATFORM,
    hostname: hostname(),
    drivers,
    capacity: { cpus: availableParallelism(), memoryBytes: totalmem(), sandboxes: engine.config.maxSandboxes, jobs: jobSlots },
    load: { sandboxes: engine.liveCount, loadAvg1: Math.round((loadavg()[0] ?? 0) * 100) / 100 },
    startedAt,
    ...(leaseTtlMs !== undefined ? { leaseTtlMs } : {}),
  };
}
