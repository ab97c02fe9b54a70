/**
 * Which destinations a sandbox may reach: by default only the public internet. One list, used by
 * the allow-list proxies (checked in the daemon before each connect) and by network `all` (the
 * same ranges written into the daemon's nftables table, egress.ts, where the kernel enforces them).
 *
 * Closed: loopback, "this network" (0/8), private (10/8, 172.16/12, 192.168/16, fc00::/7 and the
 * old site-local fec0::/10), shared CGNAT space (100.64/10), link-local (169.254/16 with the cloud
 * metadata address, fe80::/10), multicast, reserved and broadcast (224/4, 240/4, ff00::/8), and
 * every address of the host itself. An IPv6 address that carries an IPv4 one (::ffff:a.b.c.d,
 * ::a.b.c.d, NAT64 64:ff9b::/96) is judged by the IPv4 address inside.
 * The operator opens ranges with `realm serve --allow-private CIDR`; nothing a sandbox or an API
 * caller says can.
 */
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { RealmError } from '../util/errors.js';

export const CLOSED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
export const CLOSED_V6 = ['::/128', '::1/128', 'fc00::/7', 'fec0::/10', 'fe80::/10', 'ff00::/8'];

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

function blockList(cidrs: Cidr[]): BlockList {
  const b = new BlockList();
  for (const c of cidrs) b.addSubnet(c.address, c.prefix, c.family);
  return b;
}

/** Parse `ADDR/PREFIX` (or a bare address: one host); throws a usage error otherwise. */
export function parseCidr(text: string): Cidr {
  const [addr = '', len, ...rest] = text.trim().split('/');
  const v = isIP(addr);
  const max = v === 4 ? 32 : 128;
  const prefix = len === undefined ? max : Number(len);
  if (!v || rest.length || !/^\d*$/.test(len ?? '') || !Number.isInteger(prefix) || prefix < 0 || prefix > max) {
    throw new RealmError('INVALID_REQUEST', `--allow-private ${text}: write an address range such as 10.1.0.0/16 or fd00:1::/64`);
  }
  return { address: addr, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

export const formatCidr = (c: Cidr): string => `${c.address}/${c.prefix}`;

/** The IPv4 address carried by an IPv6 one (mapped, compatible, NAT64), or the address itself; lower case, no brackets. */
export function normalize(address: string): string {
  const a = address
    .replace(/^\[|\]$/g, '')
    .replace(/%.*$/, '')
    .toLowerCase(); // a zone (fe80::1%eth0) changes nothing
  if (isIP(a) !== 6) return a;
  const words = expand(a);
  const zeros = (n: number): boolean => words.slice(0, n).every((w) => w === 0);
  const v4 = (): string => [words[6] ?? 0, words[7] ?? 0].flatMap((w) => [w >> 8, w & 0xff]).join('.');
  if (zeros(5) && words[5] === 0xffff) return v4(); // ::ffff:a.b.c.d
  if (zeros(6) && ((words[6] ?? 0) !== 0 || (words[7] ?? 0) > 1)) return v4(); // ::a.b.c.d (not :: or ::1)
  if (words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0)) return v4(); // 64:ff9b::a.b.c.d
  return a;
}

/** An IPv6 address as its eight 16-bit words. */
function expand(a: string): number[] {
  let text = a.replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted?.[1]) {
    const b = dotted[1].split('.').map(Number);
    text =
      text.slice(0, -dotted[1].length) +
      `${(((b[0] ?? 0) << 8) | (b[1] ?? 0)).toString(16)}:${(((b[2] ?? 0) << 8) | (b[3] ?? 0)).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array<string>(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((w) => parseInt(w, 16));
}

/** Every address of this host's interfaces now (loopback included), normalized. */
export function hostAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(normalize(i.address));
  return out;
}

export class Destinations {
  private readonly closed = blockList([...CLOSED_V4, ...CLOSED_V6].map(parseCidr));
  private readonly opened: BlockList;

  constructor(readonly open: Cidr[] = []) {
    this.opened = blockList(open);
  }

  /** Why `address` is closed to sandboxes (checked now, against the host's addresses of now), or null when it may be reached. */
  refusal(address: string): string | null {
    const a = normalize(address);
    const v = isIP(a);
    if (!v) return `${address} is not an address`;
    const family = v === 4 ? 'ipv4' : 'ipv6';
    if (this.opened.check(a, family)) return null;
    if (hostAddresses().has(a)) return `${a} is an address of the host itself`;
    if (this.closed.check(a, family)) return `${a} is a private, link-local, loopback or reserved address`;
    return null;
  }
}

/** Refuse network `all` where the daemon could not set up its egress guard (egress.ts): fail closed. */
export function refuseUnguarded(config: { networkAllRefused?: string | undefined }, network: string | undefined): void {
  if (network === 'all' && config.networkAllRefused) throw new RealmError('DRIVER_UNAVAILABLE', config.networkAllRefused);
}
