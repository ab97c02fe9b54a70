/**
 * Which Debian archive to build from: the mirror this host's apt is configured with (so a
 * machine behind a local mirror or proxy builds from it too), and a bounded probe of a suite.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { RealmError, errorMessage } from '../../util/errors.js';

export const DEFAULT_MIRROR = 'http://deb.debian.org/debian';

/** URIs of every `deb` source in apt's configuration (one-line and deb822 formats). */
export function aptSourceUris(etcApt = '/etc/apt'): string[] {
  const texts: { text: string; deb822: boolean }[] = [];
  const main = join(etcApt, 'sources.list');
  if (existsSync(main)) texts.push({ text: readFileSync(main, 'utf8'), deb822: false });
  const dir = join(etcApt, 'sources.list.d');
  if (existsSync(dir)) {
    for (const f of readdirSync(dir).sort()) {
      if (f.endsWith('.list')) texts.push({ text: readFileSync(join(dir, f), 'utf8'), deb822: false });
      else if (f.endsWith('.sources')) texts.push({ text: readFileSync(join(dir, f), 'utf8'), deb822: true });
    }
  }
  const uris: string[] = [];
  for (const { text, deb822 } of texts) {
    if (deb822) {
      for (const stanza of text.split(/\n\s*\n/)) {
        if (/^Enabled:\s*no/im.test(stanza) || !/^Types:.*\bdeb\b/im.test(stanza)) continue;
        const m = /^URIs:\s*(.+)$/im.exec(stanza);
        if (m?.[1]) uris.push(...m[1].trim().split(/\s+/));
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)/.exec(line);
        if (m?.[1]) uris.push(m[1]);
      }
    }
  }
  return uris;
}

/** The Debian mirror this host uses (its first source ending in /debian), else deb.debian.org. */
export function hostMirror(etcApt = '/etc/apt'): string {
  const uri = aptSourceUris(etcApt).find((u) => /^https?:\/\/.+\/debian\/?$/.test(u));
  return (uri ?? DEFAULT_MIRROR).replace(/\/+$/, '');
}

/** The security archive next to a mirror (…/debian → …/debian-security), as this host has it. */
export function securityMirror(mirror: string, etcApt = '/etc/apt'): string | undefined {
  const fromHost = aptSourceUris(etcApt).find((u) => /^https?:\/\/.+\/debian-security\/?$/.test(u));
  return (fromHost ?? `${mirror}-security`).replace(/\/+$/, '');
}

/** Whether `url` answers 200 (true) or 404 (false); anything else means the archive is unreachable. */
async function exists(url: string, timeoutMs: number): Promise<boolean> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'HEAD', signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  } catch (e) {
    throw new RealmError('ARCHIVE_UNREACHABLE', `the Debian archive cannot be reached (${url}: ${errorMessage(e)}); check the network or give another mirror`);
  }
  if (res.status === 404) return false;
  if (!res.ok) throw new RealmError('ARCHIVE_UNREACHABLE', `the Debian archive answered ${res.status} for ${url}; check the mirror URL`);
  return true;
}

/**
 * The apt source lines for `suite` (the suite itself, and its -updates and -security when the
 * archive has them), after a bounded probe: an unknown suite is IMAGE_SUITE_NOT_FOUND, an archive
 * that does not answer ARCHIVE_UNREACHABLE.
 */
export async function suiteSources(suite: string, mirror: string, timeoutMs = 15_000): Promise<string[]> {
  if (!(await exists(`${mirror}/dists/${suite}/InRelease`, timeoutMs))) {
    throw new RealmError('IMAGE_SUITE_NOT_FOUND', `the archive ${mirror} has no suite "${suite}"; use a Debian suite name such as bookworm, trixie or sid`);
  }
  const lines = [`deb ${mirror} ${suite} main`];
  // Point releases and security fixes; sid and experimental have neither.
  if (await exists(`${mirror}/dists/${suite}-updates/InRelease`, timeoutMs).catch(() => false)) lines.push(`deb ${mirror} ${suite}-updates main`);
  const sec = securityMirror(mirror);
  if (sec && (await exists(`${sec}/dists/${suite}-security/InRelease`, timeoutMs).catch(() => false))) lines.push(`deb ${sec} ${suite}-security main`);
  return lines;
}

/** A bounded probe: why the archive cannot be used from here, or undefined when it can. */
export async function archiveUnreachable(mirror = hostMirror(), suite = 'bookworm', timeoutMs = 10_000): Promise<string | undefined> {
  try {
    return (await exists(`${mirror}/dists/${suite}/InRelease`, timeoutMs)) ? undefined : `${mirror} has no suite ${suite}`;
  } catch (e) {
    return errorMessage(e);
  }
}
