/**
 * The CLI's way to the daemon: the SDK's client over the daemon's unix socket (the daemon knows
 * us by our uid: no token), or over TCP with a token when REALM_URL is set. If no daemon answers
 * where we would start one ourselves, a daemon started in the background (the CLI says so).
 */
import { spawn } from 'node:child_process';
import { existsSync, fchmodSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, type ClientOptions, type StreamBody, ping } from '@realm/sdk';
import { RealmError, errorMessage } from '../util/errors.js';
import { DEFAULT_LISTEN, SYSTEM_SOCKET, defaultDataDir, defaultSocketPath, isLoopback } from '../config.js';

const MAIN = join(fileURLToPath(new URL('.', import.meta.url)), 'main.js');

let cached: Client | undefined;

/** REALM_TOKEN, or on the daemon's own host the admin token it keeps in its data dir (root only can read it). */
function localToken(): string | undefined {
  if (process.env.REALM_TOKEN) return process.env.REALM_TOKEN;
  try {
    return readFileSync(join(defaultDataDir(), 'admin-token'), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The socket to talk to: REALM_SOCKET, the system daemon's when it runs, else the one we would start. */
function socketPath(): string {
  if (process.env.REALM_SOCKET) return process.env.REALM_SOCKET;
  return existsSync(SYSTEM_SOCKET) ? SYSTEM_SOCKET : defaultSocketPath();
}

export async function client(): Promise<Client> {
  if (cached) return cached;
  if (process.env.REALM_URL && !process.env.REALM_URL.startsWith('unix:')) return (cached = await overTcp(process.env.REALM_URL));
  const socket = process.env.REALM_URL?.slice('unix:'.length) || socketPath();
  // The system daemon's socket is root's to serve; a user's CLI does not start one there.
  const mayStart = socket !== SYSTEM_SOCKET || process.getuid?.() === 0;
  // No health round trip first: the command's own request finds out, and only a refusal (no
  // socket, or nobody listening on it: nothing reached a daemon) starts one and asks again.
  const c: Client = new LocalClient(
    { socketPath: socket },
    mayStart ? () => startInBackground(process.env.REALM_LISTEN ?? DEFAULT_LISTEN, socket, c) : undefined,
  );
  return (cached = c);
}

/** A client of a daemon on this host that starts the daemon when a first request is refused. */
class LocalClient extends Client {
  constructor(
    opts: ClientOptions,
    private start: (() => Promise<void>) | undefined,
  ) {
    super(opts);
  }

  override request<T>(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<T> {
    return this.startOnRefusal(() => super.request<T>(method, path, body, signal, headers));
  }

  override stream(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<StreamBody> {
    return this.startOnRefusal(() => super.stream(method, path, body, signal, headers));
  }

  override sendRaw(
    method: string,
    path: string,
    body: Parameters<Client['sendRaw']>[2],
    contentType: string | undefined,
    signal?: AbortSignal,
    headers?: Record<string, string>,
  ): Promise<Response> {
    // A stream read for a refused request cannot be sent again.
    if (body instanceof ReadableStream) return super.sendRaw(method, path, body, contentType, signal, headers);
    return this.startOnRefusal(() => super.sendRaw(method, path, body, contentType, signal, headers));
  }

  private async startOnRefusal<T>(send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (e) {
      const start = this.start;
      if (!start || !refused(e)) throw e;
      this.start = undefined;
      await start();
      return send();
    }
  }
}

/** Whether a request failed before reaching any daemon: no socket there, or nobody listening. */
function refused(e: unknown): boolean {
  for (let c: unknown = e; c instanceof Error; c = c.cause) {
    const code = (c as NodeJS.ErrnoException).code;
    if (code === 'ECONNREFUSED' || code === 'ENOENT') return true;
  }
  return false;
}

/** REALM_CA: the CA (PEM file) an https:// REALM_URL's certificate is verified against. */
function caFile(): { ca: string } | Record<string, never> {
  const file = process.env.REALM_CA;
  if (!file) return {};
  try {
    const ca = readFileSync(file, 'utf8');
    if (!ca.includes('-----BEGIN ')) throw new Error('not a PEM file (want -----BEGIN …-----)');
    return { ca };
  } catch (e) {
    throw new RealmError('INVALID_REQUEST', `REALM_CA ${file}: ${errorMessage(e)}`);
  }
}

async function overTcp(url: string): Promise<Client> {
  const token = localToken();
  const ca = caFile();
  const c = new Client(token ? { url, token, ...ca } : { url, ...ca });
  if (await ping(c)) return c;
  const u = new URL(c.url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  // A remote daemon is not ours to start, nor one with TLS (its certificate is the operator's):
  // the request will say it is unreachable.
  if (!isLoopback(host) || u.protocol === 'https:') return c;
  // Not the system socket: this daemon is for this data dir only.
  await startInBackground(`${u.hostname}:${u.port || 80}`, process.env.REALM_SOCKET ?? join(defaultDataDir(), 'api.sock'), c);
  // A daemon started just now wrote its admin token.
  const fresh = localToken();
  return fresh && fresh !== token ? new Client({ url, token: fresh, ...ca }) : c;
}

async function startInBackground(listen: string, socket: string, c: Client): Promise<void> {
  const dataDir = defaultDataDir();
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const logPath = join(dataDir, 'daemon.log');
  // root's alone (an older realm made it 0644): what a daemon says may name its sandboxes' hosts.
  const log = openSync(logPath, 'a', 0o600);
  fchmodSync(log, 0o600);
  const child = spawn(process.execPath, [MAIN, 'serve', '--listen', listen, '--socket', socket, '--data-dir', dataDir], {
    detached: true,
    stdio: ['ignore', log, log],
    env: process.env,
  });
  child.unref();
  for (let i = 0; i < 150; i++) {
    if (await ping(c)) {
      process.stderr.write(`realm: started the daemon in the background (pid ${child.pid}) at ${c.address}; log: ${logPath}\n`);
      return;
    }
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  process.stderr.write(`realm: could not start a daemon at ${c.address}; see ${logPath}\n`);
}
