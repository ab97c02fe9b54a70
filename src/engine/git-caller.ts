/**
 * git run as the local user a request comes from, so that a workspace clones only what that
 * user can read. The daemon is root: run as root, `git -C /root/secret …` would read anything.
 */
import { type SpawnOptions, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The local user a request acts for (SO_PEERCRED on the daemon's socket, or a token's owner). */
export interface GitCaller {
  uid: number;
  gid: number;
}

/** The /etc/passwd entry of `uid` (fields), if it has one. */
function passwd(uid: number): string[] | undefined {
  try {
    return readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .map((l) => l.split(':'))
      .find((f) => f.length >= 7 && Number(f[2]) === uid && f[2] !== '');
  } catch {
    return undefined; // no passwd file
  }
}

/** The home directory of `uid`, or / when it has none (its git config then is the system's only). */
function homeOf(uid: number): string {
  return passwd(uid)?.[5] || '/';
}

/** The primary group of `uid` in /etc/passwd, or nogroup (65534) when it has no entry. */
export function primaryGid(uid: number): number {
  const gid = Number(passwd(uid)?.[3]);
  return Number.isInteger(gid) && gid >= 0 ? gid : 65534;
}

/**
 * Spawn options that run a program as the caller: its uid and gid (libuv drops every
 * supplementary group), and an environment of its own rather than the daemon's.
 */
export function asCaller(caller: GitCaller): Pick<SpawnOptions, 'uid' | 'gid' | 'env'> {
  return {
    uid: caller.uid,
    gid: caller.gid,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: homeOf(caller.uid), GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C' },
  };
}

/** Run git as the caller; its stdout (trimmed), or a RealmError-ready message on failure. */
export function gitAs(caller: GitCaller, args: string[], stdout?: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('git', args, { ...asCaller(caller), stdio: ['ignore', stdout ?? 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout?.on('data', (d: Buffer) => void (out.length < 1 << 20 && (out += d.toString('utf8'))));
    child.stderr?.on('data', (d: Buffer) => void (err.length < 1 << 16 && (err += d.toString('utf8'))));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(err.trim() || `git exited with ${code}`))));
  });
}
