/** Reading and writing cgroup files, listing and killing what is inside. */
import { existsSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Mount {
  point: string;
  type: string;
  options: string[];
}

export function readMounts(): Mount[] {
  return readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const f = line.split(' ');
      return { point: (f[1] ?? '').replace(/\\040/g, ' '), type: f[2] ?? '', options: (f[3] ?? '').split(',') };
    });
}

export function readNum(file: string): number {
  try {
    const v = Number(readFileSync(file, 'utf8').trim());
    return Number.isFinite(v) ? v : 0;
  } catch {
    return 0;
  }
}

export function readKeyed(file: string, key: string): number {
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

export function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    /* optional knob absent on this kernel */
  }
}

export function readPids(file: string): number[] {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

export function parentOf(pid: number): number {
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
export async function killChildrenFirst(pids: number[]): Promise<void> {
  const set = new Set(pids);
  const inner = pids.filter((p) => set.has(parentOf(p)));
  if (inner.length === 0) return;
  killAll(inner);
  for (let i = 0; i < 25 && inner.some((p) => existsSync(`/proc/${p}`)); i++) await sleep(2);
}

export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

export function rmTree(dir: string): void {
  for (const c of subdirs(dir)) rmTree(join(dir, c));
  try {
    rmdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Remove these (leaf) cgroup directories without looking inside: true when all are gone, false
 * as soon as one is still in use (processes or child cgroups in it) — then kill and remove.
 */
export function tryRmdirs(dirs: readonly string[]): boolean {
  for (const d of dirs) {
    try {
      rmdirSync(d);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EBUSY' || code === 'ENOTEMPTY') return false;
      if (code !== 'ENOENT') throw e;
    }
  }
  return true;
}

export async function waitEmpty(pids: () => number[], what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (pids().length === 0) return;
    await sleep(i < 20 ? 2 : 20);
  }
  throw new Error(`processes in ${what} did not exit after SIGKILL`);
}

/** The kernel's page size, which memory.stat's page counts are in (4 KiB on x86_64 and usual arm64 kernels). */
const PAGE_BYTES = 4096;

/** A cgroup's memory refaults (bytes) and major faults, from its memory.stat; zeros once it is gone. */
export function readRefaults(memoryStat: string): { bytes: number; majorFaults: number } {
  let text = '';
  try {
    text = readFileSync(memoryStat, 'utf8');
  } catch {
    /* removed: nothing more to count */
  }
  const get = (key: string): number => Number(new RegExp(`^${key} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  return {
    bytes: (get('workingset_refault_file') + get('workingset_refault_anon')) * PAGE_BYTES,
    majorFaults: get('pgmajfault'),
  };
}
