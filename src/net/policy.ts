/**
 * Network allow-lists: rules like `api.example.com`, `*.example.com:443`, `10.1.2.3:8080`,
 * `[2001:db8::1]:443`. A destination is let through when an allow rule matches it and no deny rule
 * does (deny wins). `*.example.com` matches subdomains, not `example.com` itself.
 */
import { isIP } from 'node:net';

export interface Rule {
  /** Lower-case host name, `*.` wildcard, or IP literal (IPv6 without brackets). */
  host: string;
  /** null: any port. */
  port: number | null;
}

const NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Parse `HOST[:PORT]`; null when it is not a rule. */
export function parseRule(text: string): Rule | null {
  const t = text.trim().toLowerCase();
  let host: string;
  let port: string | undefined;
  const v6 = /^\[([0-9a-f:.]+)\](?::(\d+|\*))?$/.exec(t);
  if (v6) {
    host = v6[1] ?? '';
    port = v6[2];
    if (isIP(host) !== 6) return null;
  } else {
    const i = t.lastIndexOf(':');
    host = i >= 0 ? t.slice(0, i) : t;
    port = i >= 0 ? t.slice(i + 1) : undefined;
    if (!(isIP(host) === 4 || NAME.test(host))) return null;
  }
  if (port === undefined || port === '*') return { host, port: null };
  const n = Number(port);
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? { host, port: n } : null;
}

export function formatRule(r: Rule): string {
  const h = isIP(r.host) === 6 ? `[${r.host}]` : r.host;
  return r.port === null ? h : `${h}:${r.port}`;
}

function hostMatches(pattern: string, host: string): boolean {
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return pattern === host;
}

export function matches(rule: Rule, host: string, port: number): boolean {
  return (rule.port === null || rule.port === port) && hostMatches(rule.host, host.toLowerCase().replace(/^\[|\]$/g, ''));
}

export interface Policy {
  allow: Rule[];
  deny: Rule[];
}

/** Which rule lets this destination through, or null. */
export function allowedBy(policy: Policy, host: string, port: number): Rule | null {
  if (policy.deny.some((r) => matches(r, host, port))) return null;
  return policy.allow.find((r) => matches(r, host, port)) ?? null;
}
