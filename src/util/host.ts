/**
 * Host names as a browser sends them (`Host`, an Origin's host): canonical forms, and whether a
 * name can only mean this machine. The daemon's browser guard and the gateway's both use them.
 */

export interface Authority {
  host: string;
  /** Undefined in a configured name: any port. */
  port: number | undefined;
}

/**
 * `host[:port]` in canonical form (the URL parser's: lower case, IPv6 compressed, IPv4 dotted),
 * or undefined when it is not one. `defaultPort` is the port of a text without one.
 */
export function authority(text: string, defaultPort: number | undefined): Authority | undefined {
  if (!/^[A-Za-z0-9.\-:[\]]+$/.test(text)) return undefined; // no userinfo, path, spaces
  try {
    const u = new URL(`http://${text}`);
    return { host: u.hostname, port: u.port ? Number(u.port) : text.endsWith(':80') ? 80 : defaultPort };
  } catch {
    return undefined;
  }
}

/** hostOf's answers for the Host headers seen lately (few differ; the URL parser costs ~30 µs a request). */
const hosts = new Map<string, string | undefined>();
const MAX_HOSTS = 256;

/** The host a `Host` header names, in canonical form (lower case, IPv6 in brackets), or undefined when it names none. */
export function hostOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (hosts.has(header)) return hosts.get(header);
  const host = authority(header, 80)?.host;
  if (hosts.size >= MAX_HOSTS) hosts.clear();
  hosts.set(header, host);
  return host;
}

/**
 * Whether a canonical host (hostOf's) can only mean this machine, whatever DNS says: `localhost`
 * and `*.localhost` (RFC 6761; browsers resolve them to loopback themselves), 127.0.0.0/8, [::1].
 * A page cannot rebind such a name to reach a loopback listener.
 */
export function isLoopbackName(host: string): boolean {
  const h = host.endsWith('.') ? host.slice(0, -1) : host;
  return h === 'localhost' || h.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(h) || h === '[::1]';
}
