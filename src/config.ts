/** Defaults shared by the daemon and the CLI: where state lives, where the API listens. */
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_LISTEN = '127.0.0.1:7070';
/** Where the HTTP gateway serves apps (`realm push`) unless `--gateway` says otherwise. */
export const DEFAULT_GATEWAY = '127.0.0.1:8080';

/** `--gateway`: `off`, or host:port as for --listen (port 0: a free one). */
export function parseGateway(text: string): { host: string; port: number } | null {
  if (text === 'off') return null;
  try {
    return parseListen(text);
  } catch {
    throw new Error(`--gateway ${text}: write host:port (e.g. 127.0.0.1:8080) or off`);
  }
}

/** `/var/lib/realm` as root, else `~/.local/share/realm`; `REALM_DATA_DIR` wins. */
export function defaultDataDir(): string {
  if (process.env.REALM_DATA_DIR) return process.env.REALM_DATA_DIR;
  return process.getuid?.() === 0 ? '/var/lib/realm' : join(homedir(), '.local', 'share', 'realm');
}

/** The owner key that signs manifests: `$REALM_CONFIG/owner.key`, else `~/.config/realm/owner.key` (XDG). */
export function defaultKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.REALM_CONFIG) return join(env.REALM_CONFIG, 'owner.key');
  return join(env.XDG_CONFIG_HOME || join(homedir(), '.config'), 'realm', 'owner.key');
}

/** The system daemon's unix socket (root's daemon: every local user's CLI talks to it here). */
export const SYSTEM_SOCKET = '/run/realm/api.sock';

/**
 * Where a daemon started by this user serves its unix socket: `/run/realm/api.sock` as root,
 * else `$XDG_RUNTIME_DIR/realm/api.sock` (or `api.sock` in the data dir); `REALM_SOCKET` wins.
 */
export function defaultSocketPath(): string {
  if (process.env.REALM_SOCKET) return process.env.REALM_SOCKET;
  if (process.getuid?.() === 0) return SYSTEM_SOCKET;
  return process.env.XDG_RUNTIME_DIR
    ? join(process.env.XDG_RUNTIME_DIR, 'realm', 'api.sock')
    : join(defaultDataDir(), 'api.sock');
}

/** Parse `host:port`, `[v6]:port` or a bare port. */
export function parseListen(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text) ?? /^()()(\d+)$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new Error(`--listen ${text}: write host:port, e.g. 127.0.0.1:7070`);
  return { host: m[1] || m[2] || '127.0.0.1', port };
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
