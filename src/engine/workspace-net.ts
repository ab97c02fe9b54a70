/**
 * Where a workspace may connect by default: its repository's origin, the package indexes agents
 * install from, and the model providers they talk to — through the sandbox's filtering proxy,
 * nothing else. `--allow` replaces the list; `--network all|none` replaces the filter.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseRule } from '../net/policy.js';

const run = promisify(execFile);

/** Reached over HTTPS (port 443) by default. */
export const DEFAULT_ALLOW = [
  // Package indexes.
  'pypi.org',
  'files.pythonhosted.org',
  'registry.npmjs.org',
  'registry.yarnpkg.com',
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  'proxy.golang.org',
  'sum.golang.org',
  'rubygems.org',
  'repo.maven.apache.org',
  'deb.debian.org',
  // Model providers.
  'api.anthropic.com',
  'api.openai.com',
  'generativelanguage.googleapis.com',
].map((h) => `${h}:443`);

/**
 * The host (and port) a git remote URL reaches, as an allow rule: `https://h/x` → `h:443`,
 * `ssh://git@h:2222/x` → `h:2222`, `git@h:x` → `h:22`; null for local paths and odd URLs.
 */
export function remoteRule(url: string): string | null {
  let host: string | undefined;
  let port: number | undefined;
  const scp = /^(?:[^@/:]+@)?([^/:]+):(?!\/\/)/.exec(url);
  if (/^[a-z+]+:\/\//i.test(url)) {
    try {
      const u = new URL(url);
      host = u.hostname;
      const fallback: Record<string, number> = { 'https:': 443, 'http:': 80, 'ssh:': 22, 'git+ssh:': 22, 'git:': 9418 };
      port = u.port ? Number(u.port) : fallback[u.protocol];
    } catch {
      return null;
    }
  } else if (scp) {
    host = scp[1];
    port = 22;
  }
  if (!host || !port) return null;
  const rule = `${host}:${port}`;
  return parseRule(rule) ? rule : null;
}

/** DEFAULT_ALLOW plus the origin of the repository at `root` (when it has a network one). */
export async function defaultAllow(root: string): Promise<string[]> {
  const url = await run('git', ['-C', root, 'config', '--get', 'remote.origin.url']).then(
    (r) => r.stdout.trim(),
    () => '',
  );
  const own = remoteRule(url);
  return own && !DEFAULT_ALLOW.includes(own) ? [own, ...DEFAULT_ALLOW] : [...DEFAULT_ALLOW];
}
