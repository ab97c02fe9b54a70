/**
 * A sandbox's live figures from what the host can read: its cgroup (cpu, memory, pids), the file
 * system of its writable layer (bytes used), and the interface counters of its network namespace
 * (/proc/<pid>/net/dev of a process inside: every interface but loopback).
 */
import { readFileSync, statfsSync } from 'node:fs';
import type { SandboxUsage } from '../driver.js';
import type { Cgroup } from './cgroups.js';

/** Bytes used on the file system mounted at `dir` (a tmpfs of the sandbox's own); null when unreadable. */
export function diskUsed(dir: string): number | null {
  try {
    const s = statfsSync(dir);
    return (s.blocks - s.bfree) * s.bsize;
  } catch {
    return null;
  }
}

/** Received and sent bytes of the network namespace `pid` is in, loopback left out; null when unreadable. */
export function netBytes(pid: number): { rx: number; tx: number } | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/net/dev`, 'utf8');
  } catch {
    return null;
  }
  let rx = 0;
  let tx = 0;
  // "  eth0: rxbytes rxpackets … (8 receive fields) txbytes …"
  for (const line of text.split('\n').slice(2)) {
    const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === 'lo') continue;
    const f = (m[2] ?? '').trim().split(/\s+/).map(Number);
    rx += f[0] ?? 0;
    tx += f[8] ?? 0;
  }
  return { rx, tx };
}

/** The usage of a sandbox held in `cg`; `pid`: a process inside (for its network), `disk`: its writable layer's mount. */
export function sandboxUsage(cg: Cgroup, where: { pid?: number | undefined; disk?: string | undefined }): SandboxUsage {
  const u = cg.usage();
  const net = where.pid ? netBytes(where.pid) : null;
  return {
    ...u,
    diskBytes: where.disk ? diskUsed(where.disk) : null,
    netRxBytes: net?.rx ?? null,
    netTxBytes: net?.tx ?? null,
  };
}
