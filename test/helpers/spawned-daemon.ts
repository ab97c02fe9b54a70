/**
 * A daemon in its own process, as `realm serve` runs it (for tests that kill it, restart it or
 * measure it), and the stop of one the CLI started in the background.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@realm/sdk';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { TEST_UID_RANGE } from './daemon.js';

export interface SpawnedDaemon {
  child: ChildProcess;
  url: string;
  /** A client with the admin token. */
  client: Client;
  /** Send `signal` (default SIGTERM) and wait for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * `realm serve` on `listen` (default a free port) with this data dir and cgroup root, the test
 * uid range, no gateway and no warm pools; resolved once it says where it listens.
 */
export async function spawnDaemon(opts: {
  dataDir: string;
  cgroupRoot: string;
  listen?: string;
  /** More `realm serve` flags. */
  args?: string[];
  /** More environment; undefined removes a variable. */
  env?: Record<string, string | undefined>;
}): Promise<SpawnedDaemon> {
  const main = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
  const range = `${TEST_UID_RANGE.first}:${TEST_UID_RANGE.count}`;
  const args = ['serve', '--listen', opts.listen ?? '127.0.0.1:0', '--gateway', 'off', '--warm', '0', '--uid-range', range];
  const env: NodeJS.ProcessEnv = { ...process.env, REALM_CGROUP_ROOT: opts.cgroupRoot };
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  const child = spawn(
    process.execPath,
    [main, ...args, '--socket', join(opts.dataDir, 'api.sock'), '--data-dir', opts.dataDir, ...(opts.args ?? [])],
    { stdio: ['ignore', 'ignore', 'pipe'], env },
  );
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  };
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(err);
      if (m?.[1]) resolve(m[1]);
    });
    child.once('exit', (c) => reject(new Error(`the daemon exited (${c}): ${err}`)));
  }).catch(async (e: unknown) => {
    await stop();
    throw e;
  });
  child.stderr?.resume();
  const client = new Client({ url, token: readFileSync(join(opts.dataDir, 'admin-token'), 'utf8').trim() });
  return { child, url, client, stop };
}

/** Stop the daemon the CLI started in the background in `dataDir` (its pid file says which), waiting until it is gone. */
export async function stopBackgroundDaemon(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, 'daemon.json');
  if (!existsSync(pidFile)) return;
  const { pid } = JSON.parse(readFileSync(pidFile, 'utf8')) as { pid: number };
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 200 && existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
}
