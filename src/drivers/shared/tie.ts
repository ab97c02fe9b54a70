/**
 * Tying a sandbox to the daemon's life, for the drivers whose sandbox lives in one host process
 * (gVisor's sandbox process, a microVM's QEMU): `realm-helper tie` (native/tie.c), a child of
 * this process, kills that process when the daemon dies, even by kill -9 (PR_SET_PDEATHSIG).
 * For an exec that must not outlive the daemon (a job's attempt, which may be placed again
 * elsewhere once the daemon is gone, and must not run twice at once): the namespace driver does
 * the same with `enter --die-with-parent`.
 *
 * Spawned straight from the daemon, not through a fork server: once spawn returns the helper
 * runs, and from then on a death of the daemon (before the helper arms its signal, or after)
 * ends the sandbox, so the exec may start at once.
 */
import { spawn } from 'node:child_process';
import { HELPER } from './helper.js';

/** Tie the process `pid` (started at `startTime`) to this daemon; the function returned unties it. */
export function tieToDaemon(pid: number | undefined, startTime: number | undefined): () => void {
  if (!pid || startTime === undefined) throw new Error('sandbox is not running');
  const child = spawn(
    HELPER,
    ['tie', '--parent', String(process.pid), '--target', String(pid), '--start-time', String(startTime)],
    { stdio: 'ignore', env: {}, cwd: '/' },
  );
  child.on('error', () => undefined);
  // An exec that cannot be tied must not run untied.
  if (child.pid === undefined) throw new Error(`cannot tie the sandbox to the daemon (${HELPER} did not start)`);
  // It ends by itself when the sandbox does; the daemon's exit must not wait for it.
  child.unref();
  return () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
}
