/**
 * One daemon per data dir and per cgroup root. At start a daemon sweeps the cgroups, mounts and
 * runtime state under its cgroup root that its own store does not know: were two daemons to share
 * a root (two data dirs, one default `realm` root), each would destroy the other's sandboxes; were
 * two to share a data dir, both would write one store. So a daemon claims both before it touches
 * anything, and a second one stops at start, saying who holds them.
 *
 * A claim is a lock file holding the holder's pid and its start time (field 22 of
 * /proc/PID/stat), so a pid reused since the holder died does not keep a stale claim alive; a
 * claim of a dead daemon (killed with -9) is taken over. The cgroup roots' locks live in
 * /run/realm (a tmpfs: none survives a reboot). Within one process (tests restarting a daemon in
 * place) the caller orders its own daemons: a claim of this process is taken over.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const ROOTS_DIR = '/run/realm/cgroup-roots';

interface Holder {
  pid: number;
  started: string;
  dataDir: string;
  cgroupRoot: string;
}

export interface Claim {
  release(): void;
}

/** Claim `dataDir` and `cgroupRoot` for this process; throws, naming the holder, when a live daemon has either. */
export function claimDaemon(dataDir: string, cgroupRoot: string): Claim {
  const me: Holder = { pid: process.pid, started: startTime(process.pid) ?? '', dataDir, cgroupRoot };
  const held: string[] = [];
  const release = (): void => {
    for (const file of held.splice(0)) if (holder(file)?.pid === me.pid) rmSync(file, { force: true });
  };
  try {
    take(join(dataDir, 'daemon.lock'), me, (h) => `another realm daemon (pid ${h.pid}) uses the data dir ${dataDir}`);
    held.push(join(dataDir, 'daemon.lock'));
    const rootLock = rootLockFile(cgroupRoot);
    if (rootLock) {
      take(
        rootLock,
        me,
        (h) =>
          `another realm daemon (pid ${h.pid}, data dir ${h.dataDir}) uses the cgroup root ${cgroupRoot}, and a daemon ` +
          `removes every sandbox under its root that it does not know: stop that daemon, or give this one a root of its own ` +
          `(REALM_CGROUP_ROOT=realm-2)`,
      );
      held.push(rootLock);
    }
  } catch (e) {
    release();
    throw e;
  }
  return { release };
}

/** Where the root's lock goes; none where /run/realm cannot be written (no cgroups to share either). */
function rootLockFile(cgroupRoot: string): string | undefined {
  try {
    mkdirSync(ROOTS_DIR, { recursive: true, mode: 0o755 });
  } catch {
    return undefined;
  }
  return join(ROOTS_DIR, `${encodeURIComponent(cgroupRoot)}.lock`);
}

function take(file: string, me: Holder, busy: (h: Holder) => string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, JSON.stringify(me), { flag: 'wx', mode: 0o600 });
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw e;
    }
    const h = holder(file);
    if (h && h.pid !== me.pid && alive(h)) throw new Error(busy(h));
    rmSync(file, { force: true }); // a dead holder's, a damaged one, or this process's own
  }
}

function holder(file: string): Holder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Partial<Holder>;
    return typeof h.pid === 'number' && typeof h.started === 'string'
      ? { pid: h.pid, started: h.started, dataDir: String(h.dataDir), cgroupRoot: String(h.cgroupRoot) }
      : undefined;
  } catch {
    return undefined;
  }
}

function alive(h: Holder): boolean {
  return startTime(h.pid) === h.started;
}

/** A process's start time in clock ticks since boot (with its pid, what names it uniquely); none when gone. */
export function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
