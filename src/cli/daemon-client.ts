/**
 * The CLI's way to the daemon: the SDK's client, and if no daemon answers on a loopback URL,
 * a daemon started in the background (the CLI says so).
 */
import { spawn } from 'node:child_process';
import { fchmodSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, ping } from '@realm/sdk';
import { defaultDataDir, isLoopback } from '../config.js';

const MAIN = join(fileURLToPath(new URL('.', import.meta.url)), 'main.js');

let cached: Client | undefined;

/** REALM_TOKEN, or on the daemon's own host the admin token it keeps in its data dir. */
function localToken(): string | undefined {
  if (process.env.REALM_TOKEN) return process.env.REALM_TOKEN;
  try {
    return readFileSync(join(defaultDataDir(), 'admin-token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

export async function client(): Promise<Client> {
  if (cached) return cached;
  const token = localToken();
  const c = new Client(token ? { token } : {});
  if (!(await ping(c))) {
    await startInBackground(c.url);
    // A daemon started just now wrote its admin token.
    const fresh = localToken();
    if (fresh && fresh !== token) {
      cached = new Client({ token: fresh });
      return cached;
    }
  }
  cached = c;
  return c;
}

async function startInBackground(url: string): Promise<void> {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  if (!isLoopback(host)) return; // a remote daemon is not ours to start; the request will say it is unreachable
  const dataDir = defaultDataDir();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const logPath = join(dataDir, 'daemon.log');
  // root's alone (an older realm made it 0644): what a daemon says may name its sandboxes' hosts.
  const log = openSync(logPath, 'a', 0o600);
  fchmodSync(log, 0o600);
  const child = spawn(process.execPath, [MAIN, 'serve', '--listen', `${u.hostname}:${u.port || 80}`, '--data-dir', dataDir], {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  child.unref();
  const c = new Client({ url });
  for (let i = 0; i < 150; i++) {
    if (await ping(c)) {
      process.stderr.write(`realm: started the daemon in the background (pid ${child.pid}) at ${url}; log: ${logPath}\n`);
      return;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write(`realm: could not start a daemon at ${url}; see ${logPath}\n`);
}
