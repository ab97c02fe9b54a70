/**
 * The restart into a new release, without a supervisor: realm runs under whatever started it
 * (npm start, systemd, a test harness), so the daemon restarts itself. Node cannot exec(2) in
 * place, so the process that ran the old daemon becomes, for a moment, the hand-over's supervisor:
 *
 * 1. `current` is switched to the new tree (one rename);
 * 2. the old daemon closes as on SIGTERM: sandboxes keep running, the data dir is released;
 * 3. the new release's CLI is started from `current` with this process's argv, detached, on the
 *    same stdio; it recovers the sandboxes, listens, checks its health and records `succeeded`;
 * 4. once it did, this process exits and leaves it running. If it exits first, or says nothing
 *    within the deadline, it is stopped, `current` is switched back, the old release is started
 *    the same way, and the outcome `rolled-back` recorded; then this process exits.
 *
 * A daemon under systemd should run with KillMode=process so that the old process's exit leaves
 * its detached successor alone (see the README).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errorMessage } from '../util/errors.js';
import { MAIN_IN_TREE, currentLink, swapCurrent } from './install.js';
import type { Handover, UpgradeStateFile } from './state.js';

/** How long a new daemon has to start, recover its sandboxes and pass its health check. */
export const HEALTH_DEADLINE_MS = Number(process.env.REALM_UPGRADE_DEADLINE_MS) || 120_000;

export interface HandoverContext {
  root: string;
  dataDir: string;
  state: UpgradeStateFile;
  /** Close the running daemon (as SIGTERM does). */
  close: () => Promise<void>;
}

const say = (line: string): void => void process.stderr.write(`realm upgrade: ${line}\n`);

function start(main: string): ChildProcess {
  const child = spawn(process.execPath, [...process.execArgv, main, ...process.argv.slice(2)], {
    detached: true,
    stdio: 'inherit',
    env: process.env,
  });
  child.on('error', () => undefined); // seen as the exit below
  return child;
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

/** Until `ready()` holds (true), the child exits (false) or the deadline passes (false). */
async function waitFor(child: ChildProcess, ready: () => boolean, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (ready()) return true;
    if (exited(child)) return false;
    await new Promise((r) => setTimeout(r, 200));
  }
  return ready();
}

async function stop(child: ChildProcess): Promise<void> {
  if (exited(child)) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
  await gone;
  clearTimeout(t);
}

function daemonPid(dataDir: string): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(dataDir, 'daemon.json'), 'utf8')) as { pid?: number }).pid;
  } catch {
    return undefined;
  }
}

/** Hand the daemon over to `h.tree`; never returns (the process exits). */
export async function handOver(ctx: HandoverContext, h: Handover): Promise<never> {
  const main = join(currentLink(ctx.root), MAIN_IN_TREE);
  swapCurrent(ctx.root, join('versions', String(h.version)));
  ctx.state.update((s) => {
    s.handover = h;
  });
  await ctx.close();
  say(`starting release ${h.version} from ${h.tree}`);
  const next = start(main);
  const healthy = await waitFor(
    next,
    () => {
      const s = ctx.state.get();
      return s.last?.version === h.version && s.last.phase === 'succeeded';
    },
    HEALTH_DEADLINE_MS,
  );
  if (healthy) {
    next.unref();
    process.exit(0);
  }
  const why = exited(next)
    ? `it exited (${next.exitCode ?? next.signalCode}) before it was healthy`
    : `it was not healthy within ${HEALTH_DEADLINE_MS / 1000} s`;
  say(`release ${h.version} failed: ${why}; rolling back`);
  await stop(next);
  swapCurrent(ctx.root, h.previousLink);
  rmSync(h.tree, { recursive: true, force: true });
  ctx.state.update((s) => {
    s.handover = null;
    s.unannounced = true;
    s.last = {
      version: h.version,
      phase: 'rolled-back',
      code: 'UPGRADE_UNHEALTHY',
      message: `release ${h.version} failed its health check (${why}); this node went back to release ${s.version}: see the daemon's log for why it failed, fix the release and sign a higher version`,
      at: new Date().toISOString(),
      ...(s.request ? { request: s.request } : {}),
    };
  });
  const old = start(h.previousMain);
  try {
    const back = await waitFor(old, () => daemonPid(ctx.dataDir) === old.pid, HEALTH_DEADLINE_MS);
    if (!back) say(`the previous release did not start again either: start it by hand (${h.previousMain} serve …)`);
    old.unref();
    process.exit(back ? 0 : 1);
  } catch (e) {
    say(`the previous release could not be started: ${errorMessage(e)}`);
    process.exit(1);
  }
}
