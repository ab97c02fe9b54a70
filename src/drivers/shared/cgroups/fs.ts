/** Reading and writing cgroup files, listing and killing what is inside. */
import { closeSync, existsSync, openSync, readFileSync, readSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CgroupStats, StatsReader } from './types.js';

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
    return numValue(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
}

function numValue(text: string): number {
  const v = Number(text.trim());
  return Number.isFinite(v) ? v : 0;
}

export function readKeyed(file: string, key: string): number {
  try {
    return keyedValue(readFileSync(file, 'utf8'), key);
  } catch {
    return 0; // missing file: counter not supported here
  }
}

function keyedValue(text: string, key: string): number {
  for (const line of text.split('\n')) {
    const [k, v] = line.split(/\s+/);
    if (k === key) return Number(v) || 0;
  }
  return 0;
}

/** A counter in a cgroup file: the whole file as a number, or the value of its line `key`. */
export interface StatFile {
  file: string;
  key?: string;
}

/** Read each counter now (a missing file reads 0). */
export function readStatFiles(files: readonly StatFile[]): number[] {
  return files.map((f) => (f.key === undefined ? readNum(f.file) : readKeyed(f.file, f.key)));
}

/**
 * Counter files opened once and read again from their start at each reading (a cgroup file is
 * made anew at offset 0): a reading is one system call per file, where a path read is three,
 * for a run's figures read on its answer's way. A file that could not be opened, or no longer
 * reads (its cgroup removed), reads 0 as a missing one does. close() once done.
 */
export class OpenStatFiles {
  private readonly fds: number[];
  private static readonly buf = Buffer.alloc(4096);

  constructor(private readonly files: readonly StatFile[]) {
    this.fds = files.map((f) => {
      try {
        return openSync(f.file, 'r');
      } catch {
        return -1;
      }
    });
  }

  read(): number[] {
    const buf = OpenStatFiles.buf;
    return this.files.map((f, i) => {
      const fd = this.fds[i] ?? -1;
      if (fd < 0) return 0;
      try {
        const text = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
        return f.key === undefined ? numValue(text) : keyedValue(text, f.key);
      } catch {
        return 0;
      }
    });
  }

  close(): void {
    for (const [i, fd] of this.fds.entries()) {
      if (fd >= 0) closeSync(fd);
      this.fds[i] = -1;
    }
  }
}

/** A StatsReader over these files, their counters made figures by `figures`. */
export function statsReader(files: readonly StatFile[], figures: (values: number[]) => CgroupStats): StatsReader {
  const open = new OpenStatFiles(files);
  return { read: () => figures(open.read()), close: () => open.close() };
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
