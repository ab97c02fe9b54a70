/**
 * The kernel's side of "network `all` means the public internet only" (addresses.ts has the list).
 *
 * All three drivers reach the outside through slirp4netns: the namespace driver's sandbox and a
 * microVM's QEMU user-net (in its own netns) send to slirp4netns's tap0, gVisor's netstack writes
 * raw frames to it. Every connection out therefore becomes a socket that slirp4netns opens in the
 * host's network namespace — the one place all drivers share. Filtering in the sandbox's netns
 * would miss gVisor (AF_PACKET frames bypass netfilter), so we filter there instead: slirp4netns
 * runs in a cgroup (v2) under this daemon's cgroup root, and one nftables table per daemon
 * refuses sockets of that cgroup subtree whose destination is closed. `fib daddr type local` asks
 * the kernel, per packet, whether the destination is one of the host's own addresses now, on any
 * interface. The check costs a few set lookups and a FIB lookup per packet of slirp4netns only:
 * nothing measurable next to slirp4netns itself (bench/gvisor-net.ts, and a 256 MiB download in
 * and out of the guarded cgroup, differed by less than the run-to-run noise). Packets of other
 * processes meet only the cgroup match.
 * Why not routes or nftables inside the sandbox's netns: gVisor's netstack writes raw frames to
 * tap0 (AF_PACKET) past netfilter and its own routing; and slirp4netns has no option to refuse
 * destinations besides the host's loopback.
 *
 * The one exception is DNS: slirp4netns's forwarder (10.0.2.3 inside) sends to the resolvers in
 * the host's /etc/resolv.conf, often a private or loopback address; port 53 of exactly those
 * addresses stays open (a sandbox can ask them what it could ask 10.0.2.3).
 *
 * Fail closed: no table (no nft, no cgroup2), no slirp4netns — network `all` is refused.
 * The table is named after the cgroup root, replaced when a daemon of that root starts, removed
 * when it closes with no slirp4netns left, and swept by the next daemon when its cgroup is gone.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, relative } from 'node:path';
import { RealmError } from '../util/errors.js';
import { CLOSED_V4, CLOSED_V6, type Cidr, formatCidr } from './addresses.js';
import { log } from '../logs/log.js';

export const NFT = ['/usr/sbin/nft', '/sbin/nft', '/usr/bin/nft'].find((p) => existsSync(p));
/** nft names a socket's cgroup by its path under this directory. */
const CGROUP_FS = '/sys/fs/cgroup';
const PREFIX = 'realm_egress_';

/** Where cgroup v2 is mounted (under /sys/fs/cgroup: all of it, or `unified` on a hybrid host), or undefined. */
export function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [pre, post] = line.split(' - ');
    const point = pre?.split(' ')[4];
    if (post?.startsWith('cgroup2 ') && point && (point === CGROUP_FS || point.startsWith(`${CGROUP_FS}/`))) return point;
  }
  return undefined;
}

/** Why network `all` cannot be guarded on this host, or undefined. */
export function egressProblem(): string | undefined {
  if (!NFT) return 'network "all" needs nftables to keep sandboxes off private and host addresses (apt-get install nftables)';
  if (!cgroup2Mount())
    return 'network "all" needs cgroup v2 mounted under /sys/fs/cgroup (on a cgroup v1 host, the hybrid "unified" hierarchy) to tell slirp4netns\'s sockets apart';
  return undefined;
}

function nft(script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(NFT ?? 'nft', ['-f', '-'], { timeout: 10_000 }, (e, _out, err) =>
      e ? reject(new Error(`nft: ${err.trim() || e.message}`)) : resolve(),
    );
    child.stdin?.end(script);
  });
}

function nftList(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(NFT ?? 'nft', ['list', ...args], { timeout: 10_000 }, (e, out) => (e ? reject(new Error(e.message)) : resolve(out)));
  });
}

/** Resolvers slirp4netns forwards DNS to (the host's resolv.conf). */
function resolvers(): string[] {
  try {
    return [...readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^\s*nameserver\s+(\S+)/gm)]
      .map((m) => (m[1] ?? '').replace(/%.*$/, ''))
      .filter((a) => isIP(a));
  } catch {
    return [];
  }
}

const set = (name: string, type: string, elements: string[]): string =>
  `  set ${name} { type ${type}; flags interval; auto-merge;${elements.length ? ` elements = { ${elements.join(', ')} };` : ''} }\n`;

function ruleset(table: string, cgroupPath: string, level: number, open: Cidr[], root: string): string {
  const dns = resolvers();
  const of = (fam: 'ipv4' | 'ipv6') => open.filter((c) => c.family === fam).map(formatCidr);
  // Create-then-delete so the replace works whether or not an old table is there; one transaction.
  return (
    `table inet ${table}\ndelete table inet ${table}\ntable inet ${table} {\n` +
    `  comment "realm: egress of network all sandboxes in cgroup ${root}"\n` +
    set('open4', 'ipv4_addr', of('ipv4')) +
    set('open6', 'ipv6_addr', of('ipv6')) +
    set('closed4', 'ipv4_addr', CLOSED_V4) +
    set('closed6', 'ipv6_addr', [...CLOSED_V6, '::ffff:0.0.0.0/96', '64:ff9b::/96']) +
    set(
      'dns4',
      'ipv4_addr',
      dns.filter((a) => isIP(a) === 4),
    ) +
    set(
      'dns6',
      'ipv6_addr',
      dns.filter((a) => isIP(a) === 6),
    ) +
    '  chain refuse {\n    meta l4proto tcp reject with tcp reset\n    reject with icmpx type admin-prohibited\n  }\n' +
    '  chain egress {\n' +
    '    ip daddr @dns4 meta l4proto { tcp, udp } th dport 53 accept\n    ip6 daddr @dns6 meta l4proto { tcp, udp } th dport 53 accept\n' +
    '    ip daddr @open4 accept\n    ip6 daddr @open6 accept\n' +
    '    fib daddr type { local, broadcast, multicast } goto refuse\n' +
    '    ip daddr @closed4 goto refuse\n    ip6 daddr @closed6 goto refuse\n  }\n' +
    `  chain output {\n    type filter hook output priority filter; policy accept;\n    socket cgroupv2 level ${level} "${cgroupPath}" jump egress\n  }\n}\n`
  );
}

export class EgressGuard {
  private ino: number;

  private constructor(
    readonly cgroupRoot: string,
    private readonly open: Cidr[],
    private readonly mount: string,
    readonly table: string,
  ) {
    this.ino = 0;
  }

  private get dir(): string {
    return join(this.mount, this.cgroupRoot);
  }

  /** Install this daemon's table (replacing one a previous daemon of the same root left) and sweep tables of cgroups that are gone. */
  static async open(cgroupRoot: string, open: Cidr[]): Promise<EgressGuard> {
    const problem = egressProblem();
    const mount = cgroup2Mount();
    if (problem || !mount) throw new RealmError('DRIVER_UNAVAILABLE', problem ?? 'no cgroup v2');
    // Both end up inside quoted nft strings, which have no escapes.
    if (!/^[\w.@/-]+$/.test(cgroupRoot))
      throw new RealmError(
        'DRIVER_UNAVAILABLE',
        `network "all" needs a cgroup root of letters, digits and ._@/- (REALM_CGROUP_ROOT), not ${cgroupRoot}`,
      );
    const g = new EgressGuard(
      cgroupRoot,
      open,
      mount,
      PREFIX + createHash('sha256').update(cgroupRoot).digest('hex').slice(0, 16),
    );
    await g.install();
    await sweep(mount).catch(() => undefined);
    return g;
  }

  private async install(): Promise<void> {
    mkdirSync(this.dir, { recursive: true });
    const ino = statSync(this.dir).ino;
    const level = this.cgroupRoot.split('/').filter(Boolean).length;
    await nft(ruleset(this.table, relative(CGROUP_FS, this.dir), level, this.open, this.cgroupRoot));
    this.ino = ino;
  }

  /**
   * The cgroup.procs files slirp4netns must join besides the sandbox's (`procs`) so the table
   * sees its sockets: none when the sandbox's cgroup is already under our v2 root, else our
   * root's own. Re-installs the table if the root was made anew since (nft holds a cgroup by id).
   */
  async prepare(procs: string[]): Promise<string[]> {
    if (!existsSync(this.dir) || statSync(this.dir).ino !== this.ino) await this.install();
    return procs.some((p) => p.startsWith(`${this.dir}/`)) ? [] : [join(this.dir, 'cgroup.procs')];
  }

  /** Remove the table, unless slirp4netns processes of sandboxes that outlive this daemon still need it. */
  async close(): Promise<void> {
    // The last sandbox's processes may still be exiting (a destroy just before a shutdown).
    for (let i = 0; i < 40 && hasProcesses(this.dir); i++) await new Promise((r) => setTimeout(r, 50));
    if (hasProcesses(this.dir)) return;
    try {
      rmdirSync(this.dir);
    } catch {
      return; // sandbox cgroups below (pure cgroup v2): they keep the table until the next daemon replaces it
    }
    await nft(`delete table inet ${this.table}\n`).catch(() => undefined);
  }
}

function hasProcesses(dir: string): boolean {
  try {
    if (readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim()) return true;
    return readdirSync(dir, { withFileTypes: true }).some((d) => d.isDirectory() && hasProcesses(join(dir, d.name)));
  } catch {
    return false;
  }
}

/** Delete realm tables whose cgroup root no longer exists (left by a daemon that crashed and whose cgroups were cleaned since). */
async function sweep(mount: string): Promise<void> {
  // Text, not -j: nft 1.0's JSON leaves out table comments.
  for (const [, name] of (await nftList(['tables', 'inet'])).matchAll(new RegExp(`^table inet (${PREFIX}\\w+)$`, 'gm'))) {
    if (!name) continue;
    const root = /comment "[^"]* in cgroup ([^"]+)"/.exec(await nftList(['table', 'inet', name]))?.[1];
    if (root && !existsSync(join(mount, root))) await nft(`delete table inet ${name}\n`).catch(() => undefined);
  }
}

/** The guards of the daemons of this process, by cgroup root; a failure is kept as the reason `all` is refused. */
const guards = new Map<string, EgressGuard | { problem: string }>();

/** Set up the guard of a daemon; what goes wrong is returned (and network `all` is then refused). */
export async function startEgress(cgroupRoot: string, open: Cidr[]): Promise<string | undefined> {
  try {
    guards.set(cgroupRoot, await EgressGuard.open(cgroupRoot, open));
    return undefined;
  } catch (e) {
    const problem = `network "all" is off on this node: ${e instanceof Error ? e.message : String(e)}`;
    guards.set(cgroupRoot, { problem });
    log.warn(problem);
    return problem;
  }
}

export async function stopEgress(cgroupRoot: string): Promise<void> {
  const g = guards.get(cgroupRoot);
  guards.delete(cgroupRoot);
  if (g instanceof EgressGuard) await g.close();
}

/**
 * The guard of the daemon whose sandbox joins these cgroup.procs files (`/sys/fs/cgroup/[<hierarchy>/]
 * <root>/<id>/…/cgroup.procs`, so the drivers need not carry the root); network `all` is refused without one.
 */
export function egressGuard(procs: string[]): EgressGuard {
  const rels = procs.flatMap((p) => {
    const rel = relative(CGROUP_FS, p);
    return [rel, rel.slice(rel.indexOf('/') + 1)];
  });
  const root = [...guards.keys()].filter((r) => rels.some((d) => d.startsWith(`${r}/`))).sort((a, b) => b.length - a.length)[0];
  const g = root === undefined ? undefined : guards.get(root);
  if (g instanceof EgressGuard) return g;
  throw new RealmError(
    'DRIVER_UNAVAILABLE',
    g?.problem ?? 'network "all" is off: this daemon has no egress guard (nftables table) for its sandboxes',
  );
}

/** For `realm doctor`: how network `all` is guarded for this cgroup root. */
export function egressStatus(cgroupRoot: string): string {
  const g = guards.get(cgroupRoot);
  if (g instanceof EgressGuard) return `public internet only (nftables table inet ${g.table})`;
  return `NOT available: ${g?.problem ?? egressProblem() ?? 'not set up'}`;
}
