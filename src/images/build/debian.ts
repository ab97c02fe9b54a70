/**
 * Build a Debian root filesystem tarball from a recipe with mmdebstrap: the `essential` variant
 * plus the recipe's packages (no recommends, no docs, man pages or translations), then a hook
 * that makes it fit a sandbox: the sandbox user in /etc/passwd, /etc/hosts, everything
 * world-readable (sandboxes are built by an unprivileged uid), the recipe's files written and its
 * `remove` paths removed.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { RealmError } from '../../util/errors.js';
import type { Recipe } from './recipe.js';

/** One step of a build, for progress bars and logs. */
export interface BuildProgress {
  phase: string;
  message: string;
  /** Rough share of the work done, 0..100. */
  percent: number;
}

/** mmdebstrap's own progress lines, mapped to phases and a rough share of the work done. */
const PHASES: [RegExp, string, number][] = [
  [/^I: running --setup-hook/, 'check', 3],
  [/^I: running apt-get update/, 'update', 5],
  [/^I: downloading packages/, 'download', 10],
  [/^I: extracting archives/, 'extract', 30],
  [/^I: installing essential packages/, 'install', 40],
  [/^I: installing remaining packages/, 'install', 50],
  [/^I: running --customize-hook/, 'customize', 85],
  [/^I: cleaning package lists/, 'clean', 88],
  [/^I: creating tarball/, 'tarball', 90],
];

/** dpkg options: leave out what no program reads at run time (copyright files stay). */
const DPKG_OPTS = [
  'path-exclude=/usr/share/man/*', 'path-exclude=/usr/share/doc/*', 'path-include=/usr/share/doc/*/copyright',
  'path-exclude=/usr/share/info/*', 'path-exclude=/usr/share/locale/*', 'path-exclude=/usr/share/lintian/*',
  'path-exclude=/usr/share/doc-base/*',
];

/**
 * Runs before anything is downloaded: resolve the packages against the archive's index, so an
 * unknown name or a conflict fails in seconds rather than after the base system is installed.
 */
const CHECK_SCRIPT = `export APT_CONFIG="$MMDEBSTRAP_APT_CONFIG"
apt-get update -q >/dev/null || exit 1
out=$(apt-get install --simulate -q "$@") || exit 1
echo "realm-packages: $(printf '%s\\n' "$out" | grep -c '^Inst ')" >&2
`;

/**
 * Runs in the finished tree before it is packed: $1 is the root, $2 the staged recipe files.
 * Everything but staging the files happens inside `chroot`: an absolute symlink in the image
 * (or a recipe path through one) then points into the image, never at the host.
 */
export function customizeScript(recipe: Recipe): string {
  const removes = recipe.remove.map((g) => `rm -rf ${g}`).join('\n');
  return `set -eu
root="$1"
if [ -d "$2" ]; then
  if [ ! -d "$root/tmp" ] || [ -L "$root/tmp" ]; then echo "realm: the image has no /tmp directory to stage files in" >&2; exit 1; fi
  rm -rf "$root/tmp/.realm-files"
  cp -R "$2" "$root/tmp/.realm-files"
fi
chroot "$root" /bin/sh -eu <<'REALM_IN_CHROOT'
if [ -d /tmp/.realm-files ]; then cp -R --no-preserve=ownership /tmp/.realm-files/. /; rm -rf /tmp/.realm-files; fi
# The sandbox user (uid 1000) and names runtimes look up.
grep -q '^user:' /etc/passwd || echo 'user:x:1000:1000:sandbox user:/home/user:/bin/bash' >> /etc/passwd
grep -q '^user:' /etc/group || echo 'user:x:1000:' >> /etc/group
rm -f /etc/hosts /etc/resolv.conf
printf '127.0.0.1\\tlocalhost sandbox\\n::1\\tlocalhost ip6-localhost ip6-loopback\\n' > /etc/hosts
: > /etc/resolv.conf
rm -rf /var/cache/debconf/*-old /var/log/* /var/cache/ldconfig/aux-cache
${removes}
# Sandboxes are built by an unprivileged host uid: everything must be readable by others.
find / -xdev \\( -path /proc -o -path /sys -o -path /dev \\) -prune -o ! -type l -exec chmod o+rX {} +
# No set-uid or set-gid files: they mean nothing in a sandbox (no-new-privs), and unpacked on the
# host they would be privileged programs any local user could start.
find / -xdev -type f -perm /6000 -exec chmod ug-s {} +
REALM_IN_CHROOT
`;
}

/**
 * Build `recipe` into the tarball `outTar`, working in `workDir` (which the caller owns and
 * removes). Progress goes to `onProgress`; aborting `signal` stops the build.
 */
export async function buildDebianTarball(recipe: Recipe, sources: string[], outTar: string, workDir: string, report: (p: BuildProgress) => void, signal?: AbortSignal): Promise<void> {
  // Phase marks and package counts interleave: the bar only moves forward.
  let high = 0;
  const onProgress = (p: BuildProgress): void => {
    high = Math.max(high, p.percent);
    report({ ...p, percent: high });
  };
  const filesDir = join(workDir, 'files');
  for (const [path, content] of Object.entries(recipe.files)) {
    mkdirSync(dirname(join(filesDir, path)), { recursive: true, mode: 0o755 });
    writeFileSync(join(filesDir, path), content, { mode: 0o644 });
  }
  const hook = join(workDir, 'customize.sh');
  writeFileSync(hook, customizeScript(recipe), { mode: 0o755 });
  const check = join(workDir, 'check.sh');
  writeFileSync(check, CHECK_SCRIPT, { mode: 0o755 });
  const tmp = join(workDir, 'tmp');
  mkdirSync(tmp, { mode: 0o755 });
  const args = [
    // --verbose: apt's and dpkg's own lines, counted for finer progress (see PackageCounter).
    '--variant=essential', '--mode=auto', '--format=tar', '--skip=output/dev', '--verbose',
    // Package names are validated (recipe.ts): nothing in them a shell would read.
    ...(recipe.packages.length ? [`--include=${recipe.packages.join(',')}`, `--setup-hook=sh '${check}' ${recipe.packages.join(' ')}`] : []),
    ...DPKG_OPTS.map((o) => `--dpkgopt=${o}`),
    '--aptopt=APT::Install-Recommends "false"',
    // Some postinst scripts (openjdk's) register man pages with update-alternatives.
    '--essential-hook=mkdir -p "$1/usr/share/man/man1"',
    `--customize-hook=sh '${hook}' "$1" '${filesDir}'`,
    recipe.suite, outTar, ...sources,
  ];
  onProgress({ phase: 'start', message: `mmdebstrap ${recipe.suite}: ${recipe.packages.length} package${recipe.packages.length === 1 ? '' : 's'} from ${recipe.mirror}`, percent: 1 });
  const tail: string[] = [];
  if (signal?.aborted) throw new RealmError('IMAGE_BUILD_FAILED', 'the build was cancelled');
  const code = await new Promise<number | null>((resolve, reject) => {
    // TMPDIR: mmdebstrap's chroot lives in our work dir, so nothing of it can outlive the build.
    const child = spawn('mmdebstrap', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp, LC_ALL: 'C.UTF-8' } });
    let buf = '';
    const counter = new PackageCounter(onProgress);
    const onLine = (line: string): void => {
      tail.push(line);
      if (tail.length > 60) tail.shift();
      for (const [re, phase, percent] of PHASES) if (re.test(line)) onProgress({ phase, message: phase === 'customize' ? 'preparing the tree for sandboxes' : phase === 'check' ? 'checking that apt can install every package' : line.replace(/^I: /, ''), percent });
      counter.line(line);
    };
    const onData = (d: Buffer): void => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    // SIGTERM lets mmdebstrap unmount and remove its chroot before it exits.
    const onAbort = (): void => void child.kill('SIGTERM');
    signal?.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => {
      signal?.removeEventListener('abort', onAbort);
      reject(e.message.includes('ENOENT') ? new RealmError('IMAGE_BUILD_FAILED', 'mmdebstrap is not installed on the daemon\'s host; install it (apt-get install mmdebstrap) or run scripts/setup.sh') : e);
    });
    child.on('close', (c) => {
      signal?.removeEventListener('abort', onAbort);
      if (buf) onLine(buf);
      resolve(c);
    });
  });
  if (signal?.aborted) throw new RealmError('IMAGE_BUILD_FAILED', 'the build was cancelled');
  if (code !== 0) throw buildError(tail);
}

/**
 * Finer progress inside the longest phase, installing the recipe's packages: the check hook says
 * how many there are (beyond the essential set); apt's `Get:` lines (50→60%) and dpkg's
 * `Setting up` lines (60→85%) in that phase count toward it.
 */
class PackageCounter {
  private total = 0;
  private got = 0;
  private setUp = 0;
  private last = -1;
  private remaining = false;
  constructor(private readonly onProgress: (p: BuildProgress) => void) {}

  line(line: string): void {
    const n = /^realm-packages: (\d+)$/.exec(line);
    if (n) this.total = Number(n[1]);
    if (/^I: installing remaining packages/.test(line)) this.remaining = true;
    if (!this.total || !this.remaining) return;
    if (/^Get:\d+ /.test(line)) {
      this.got++;
      this.report('install', 50 + (10 * Math.min(this.got, this.total)) / this.total, `downloading packages (${Math.min(this.got, this.total)}/${this.total})`);
    } else if (/^Setting up /.test(line)) {
      this.setUp++;
      this.report('install', 60 + (25 * Math.min(this.setUp, this.total)) / this.total, `installing packages (${Math.min(this.setUp, this.total)}/${this.total})`);
    }
  }

  private report(phase: string, percent: number, message: string): void {
    const p = Math.floor(percent);
    if (p === this.last) return; // one event per percent, not per package
    this.last = p;
    this.onProgress({ phase, message, percent: p });
  }
}

/** The error a failed mmdebstrap run means, from the last lines it printed. */
export function buildError(lines: string[]): RealmError {
  const text = lines.join('\n');
  const missing = [...text.matchAll(/E: Unable to locate package (\S+)|E: Package '([^']+)' has no installation candidate|E: Couldn't find any package by \w+ '([^']+)'/g)]
    .map((m) => m[1] ?? m[2] ?? m[3]).filter((p): p is string => !!p);
  if (missing.length) {
    return new RealmError('IMAGE_PACKAGE_NOT_FOUND', `apt cannot find package${missing.length > 1 ? 's' : ''} ${[...new Set(missing)].join(', ')} in this suite; check the names (apt-cache search, packages.debian.org) and the suite`);
  }
  if (/Temporary failure resolving|Could not resolve|Failed to fetch|Connection failed|Unable to connect/.test(text)) {
    return new RealmError('ARCHIVE_UNREACHABLE', `the Debian archive could not be reached during the build: ${lastErrors(lines)}`);
  }
  return new RealmError('IMAGE_BUILD_FAILED', `mmdebstrap failed: ${lastErrors(lines)}`);
}

function lastErrors(lines: string[]): string {
  const errs = lines.filter((l) => /^(E|W): |error/i.test(l));
  return (errs.length ? errs : lines).slice(-6).join(' | ').slice(0, 2000);
}
