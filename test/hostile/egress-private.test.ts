/**
 * Egress beyond the public internet: a sandbox with network `all`, and an allow-list sandbox
 * through its proxy (CONNECT, plain HTTP, SOCKS5; IP literals, IPv4-mapped IPv6 literals and names
 * the operator pinned), must not reach private (10/8, fd00::/8 ULA), CGNAT (100.64/10) or
 * link-local (169.254/16, where clouds keep their metadata) addresses, nor any address of the host
 * itself — unless the operator opened that range (`--allow-private`), and then only that one.
 *
 * Every destination is made here: a network namespace of the test's own, joined to the host by a
 * veth pair carrying a /30 (or /64) of each range, with a TCP listener on the far end of each, and
 * listeners of ours on the host's own addresses. Nothing else is contacted (169.254.77.0/30, never
 * the real metadata address). A far end on 198.18.0.0/15 (public to realm) is the control: it
 * must connect, so a refusal is the guard's and not a broken network.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, connect, createServer, isIP } from 'node:net';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox } from '@realm/sdk';
import { leftovers, removeTestDirs, startTestDaemon, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { outsideWorldSkipReason } from '../helpers/netns.js';
import { PY_ATTEMPT, SLOW, assertNoGuard, pyGuard, record, secs } from './common.js';

const skip = (await testDriverSkipReason()) ?? outsideWorldSkipReason();
const PORT = 8080;

interface Target {
  /** What the assertions call it. */
  name: string;
  address: string;
  port: number;
  /** A name the daemon pins to this address. */
  pinned: string;
}

interface World {
  targets: Target[];
  /** The public control. */
  control: Target;
  /** Connections each target accepted (by name). */
  hits: Map<string, number>;
  close(): void;
}

const LISTENER = `import socket, selectors, sys
sel = selectors.DefaultSelector()
for a in sys.argv[1:]:
    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((a, ${PORT}))
    s.listen(64)
    sel.register(s, selectors.EVENT_READ, a)
print('ready', flush=True)
while True:
    for key, _ in sel.select():
        c, _ = key.fileobj.accept()
        print('hit', key.data, flush=True)
        c.close()
`;

/** The host's own global addresses (IPv4) now, from `ip -j addr`, but those of the veths of tests. */
function hostAddresses(): string[] {
  const links = JSON.parse(execFileSync('ip', ['-j', 'addr'], { encoding: 'utf8' })) as {
    ifname: string;
    addr_info?: { family: string; local: string; scope: string }[];
  }[];
  return links
    .filter((l) => l.ifname !== 'lo' && !/^(rh-|eh-|rlm)/.test(l.ifname))
    .flatMap((l) => (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.scope === 'global').map((a) => a.local));
}

async function makeWorld(): Promise<World> {
  const tag = randomBytes(3).toString('hex');
  const n = ((randomBytes(1)[0] ?? 0) % 250) + 1;
  const ns = `realm-e-${tag}`;
  const [host, far] = [`eh-${tag}`, `en-${tag}`];
  const ip = (...args: string[]): void => void execFileSync('ip', args, { stdio: 'pipe' });
  const nets = [
    { name: 'private 10/8', near: `10.77.${n}.1/30`, far: `10.77.${n}.2`, len: 30 },
    { name: 'CGNAT 100.64/10', near: `100.64.${n}.1/30`, far: `100.64.${n}.2`, len: 30 },
    { name: 'link-local 169.254/16', near: '169.254.77.1/30', far: '169.254.77.2', len: 30 },
    { name: 'ULA fd00::/8', near: `fd00:77:${n.toString(16)}::1/64`, far: `fd00:77:${n.toString(16)}::2`, len: 64 },
    { name: 'public control', near: `198.18.${n}.1/30`, far: `198.18.${n}.2`, len: 30 },
  ];
  const hits = new Map<string, number>();
  const servers: Server[] = [];
  let listener: ChildProcess | undefined;
  const close = (): void => {
    listener?.kill('SIGKILL');
    for (const s of servers) s.close();
    try {
      ip('netns', 'del', ns);
    } catch {
      /* not made */
    }
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', host, 'type', 'veth', 'peer', 'name', far);
    ip('link', 'set', far, 'netns', ns);
    for (const x of nets) {
      ip('addr', 'add', x.near, 'dev', host, ...(x.len === 64 ? ['nodad'] : []));
      ip('-n', ns, 'addr', 'add', `${x.far}/${x.len}`, 'dev', far, ...(x.len === 64 ? ['nodad'] : []));
    }
    ip('link', 'set', host, 'up');
    ip('-n', ns, 'link', 'set', far, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    const l = spawn('ip', ['netns', 'exec', ns, '/usr/bin/python3', '-c', LISTENER, ...nets.map((x) => x.far)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    listener = l;
    const byFar = new Map(nets.map((x) => [x.far, x.name]));
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      l.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === 'ready') resolve();
          const name = byFar.get(line.replace(/^hit /, ''));
          if (line.startsWith('hit ') && name) hits.set(name, (hits.get(name) ?? 0) + 1);
        }
      });
      l.once('exit', (code) => reject(new Error(`the listeners exited (${code})`)));
    });
    // The host's own addresses: its interfaces' (if any) and the near end of our veth, which is
    // in the public-to-realm 198.18/15 yet the host's.
    const own = [...hostAddresses(), `198.18.${n}.1`];
    const pin = (name: string): string => `${name.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.realm.test`;
    const targets: Target[] = nets
      .filter((x) => x.name !== 'public control')
      .map((x) => ({ name: x.name, address: x.far, port: PORT, pinned: pin(x.name) }));
    for (const a of own) {
      const name = `host's own ${a}`;
      const s = createServer((c) => {
        hits.set(name, (hits.get(name) ?? 0) + 1);
        c.destroy();
      });
      servers.push(s);
      await new Promise<void>((r, j) => s.once('error', j).listen(0, a, () => r()));
      targets.push({ name, address: a, port: (s.address() as AddressInfo).port, pinned: pin(name) });
    }
    const controlNet = nets.find((x) => x.name === 'public control');
    const control: Target = { name: 'public control', address: controlNet?.far ?? '', port: PORT, pinned: pin('public control') };
    return { targets, control, hits, close };
  } catch (e) {
    close();
    throw e;
  }
}

/** What a sandbox program tries against each target: `all` (direct), or through the proxy. */
function program(dataDir: string, targets: Target[], via: 'direct' | 'proxy'): string {
  const list = JSON.stringify(targets.map((t) => [t.name, t.address, t.port, t.pinned]));
  return `${pyGuard(dataDir)}${PY_ATTEMPT}import socket, struct
T = ${list}
def direct(a, p):
    s = socket.socket(socket.AF_INET6 if ':' in a else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(${4 * SLOW})
    s.connect((a, p))
    return 'connected'
def mapped(a):
    return '::ffff:' + a if ':' not in a else a
def hexmapped(a):
    if ':' in a:
        return a
    b = [int(x) for x in a.split('.')]
    return '::ffff:%x:%x' % (b[0] << 8 | b[1], b[2] << 8 | b[3])
def connect(target):
    s = socket.create_connection(('127.0.0.1', 3128), ${4 * SLOW})
    s.sendall(('CONNECT %s HTTP/1.1\\r\\nHost: %s\\r\\n\\r\\n' % (target, target)).encode())
    return s.recv(64).decode().split('\\r\\n')[0]
def get(host, p):
    s = socket.create_connection(('127.0.0.1', 3128), ${4 * SLOW})
    s.sendall(('GET http://%s:%d/ HTTP/1.1\\r\\nHost: %s\\r\\nConnection: close\\r\\n\\r\\n' % (host, p, host)).encode())
    return s.recv(64).decode().split('\\r\\n')[0]
def socks(host, p):
    s = socket.create_connection(('127.0.0.1', 3128), ${4 * SLOW})
    s.sendall(bytes([5, 1, 0]))
    assert s.recv(2) == bytes([5, 0])
    try:
        addr = bytes([4]) + socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        try:
            addr = bytes([1]) + socket.inet_aton(host)
        except OSError:
            addr = bytes([3, len(host)]) + host.encode()
    s.sendall(bytes([5, 1, 0]) + addr + struct.pack('>H', p))
    return 'socks %d' % s.recv(10)[1]
br = lambda a: '[%s]' % a if ':' in a else a
for name, a, p, pinned in T:
    if '${via}' == 'direct':
        attempt(name, lambda a=a, p=p: direct(a, p))
        if ':' not in a:
            attempt(name + ' mapped', lambda a=a, p=p: direct(mapped(a), p))
        continue
    attempt(name + ' CONNECT', lambda a=a, p=p: connect('%s:%d' % (br(a), p)))
    attempt(name + ' CONNECT mapped', lambda a=a, p=p: connect('[%s]:%d' % (mapped(a), p)))
    attempt(name + ' CONNECT hex-mapped', lambda a=a, p=p: connect('[%s]:%d' % (hexmapped(a), p)))
    attempt(name + ' CONNECT pinned', lambda p=p, n=pinned: connect('%s:%d' % (n, p)))
    attempt(name + ' GET pinned', lambda p=p, n=pinned: get(n, p))
    attempt(name + ' GET', lambda a=a, p=p: get(br(a), p))
    attempt(name + ' SOCKS', lambda a=a, p=p: socks(a, p))
    attempt(name + ' SOCKS mapped', lambda a=a, p=p: socks(mapped(a), p))
    attempt(name + ' SOCKS pinned', lambda p=p, n=pinned: socks(n, p))
done()
`;
}

/** Whether each attempt got through (a connection, a 200/502 from upstream, SOCKS success), by name. */
function through(rec: Record<string, string>): Record<string, boolean> {
  return Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, /^OK '(connected|HTTP\/1\.[01] (200|502)|socks 0)/.test(v)]));
}

async function withDaemon(world: World, allowPrivate: string[], fn: (t: TestDaemon) => Promise<void>): Promise<void> {
  const pinned = Object.fromEntries([...world.targets, world.control].map((x) => [x.pinned, x.address]));
  const t = await startTestDaemon({ warm: 0, pinnedHosts: pinned, allowPrivate });
  try {
    await fn(t);
    assert.deepEqual(await leftovers(t), []);
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

async function attempts(
  t: TestDaemon,
  world: World,
  opts: { network: 'all' } | { allow: string[] },
): Promise<Record<string, boolean>> {
  const sb = await Sandbox.create({ memory: '256m', ...opts }, t.client);
  try {
    const code = program(t.dataDir, [...world.targets, world.control], 'network' in opts ? 'direct' : 'proxy');
    const r = await sb.exec(['/usr/bin/python3', '-c', code], { timeout: secs(180) });
    assertNoGuard(r);
    return through(record(r));
  } finally {
    await sb.destroy();
  }
}

/** The allow-list that names every target (by address, mapped address and pinned name): only the address check stands between. */
function allowEverything(world: World): string[] {
  return [...world.targets, world.control]
    .flatMap((x) => {
      const lit = isIP(x.address) === 6 ? `[${x.address}]` : x.address;
      return [`${lit}:${x.port}`, `[::ffff:${x.address}]:${x.port}`, `${x.pinned}:${x.port}`];
    })
    .filter((r) => !r.startsWith('[::ffff:fd'));
}

void test(
  'egress: network all and the proxies reach the public internet only; --allow-private opens exactly its range',
  { skip, timeout: 1_800_000 },
  async () => {
    const world = await makeWorld();
    try {
      const cgnat = world.targets.find((x) => x.name.startsWith('CGNAT'));
      assert.ok(cgnat);
      // The world works: from the host, every listener answers (then the counts start from zero).
      for (const x of [...world.targets, world.control]) {
        await new Promise<void>((resolve, reject) => {
          const c = connect(x.port, x.address, () => {
            c.destroy();
            resolve();
          });
          c.once('error', (e) => reject(new Error(`${x.name} (${x.address}) does not answer from the host: ${e.message}`)));
        });
      }
      await sleep(200);
      world.hits.clear();

      await withDaemon(world, [], async (t) => {
        const all = await attempts(t, world, { network: 'all' });
        assert.equal(all['public control'], true, `network all reaches the public control: ${JSON.stringify(all)}`);
        for (const x of world.targets) {
          assert.equal(all[x.name], false, `network all reached ${x.name} (${x.address})`);
          if (x.address.includes('.'))
            assert.equal(all[`${x.name} mapped`], false, `network all reached ${x.name} as ::ffff:${x.address}`);
        }
        const proxied = await attempts(t, world, { allow: allowEverything(world) });
        assert.equal(proxied['public control CONNECT'], true, `the proxy reaches the public control: ${JSON.stringify(proxied)}`);
        assert.equal(
          proxied['public control SOCKS pinned'],
          true,
          'the proxy reaches the public control by its pinned name over SOCKS',
        );
        for (const [k, ok] of Object.entries(proxied))
          if (!k.startsWith('public control')) assert.equal(ok, false, `the proxy let ${k} through`);
        await sleep(200);
        assert.deepEqual(
          [...world.hits.keys()].filter((k) => k !== 'public control'),
          [],
          'a closed address accepted a connection from a sandbox',
        );
      });

      world.hits.clear();
      // The operator opens CGNAT: that range connects, by network all and through the proxy; nothing else does.
      await withDaemon(world, [`${cgnat.address.replace(/\.\d+$/, '.0')}/30`], async (t) => {
        const all = await attempts(t, world, { network: 'all' });
        assert.equal(all[cgnat.name], true, `network all reaches the opened ${cgnat.name}: ${JSON.stringify(all)}`);
        for (const x of world.targets)
          if (x !== cgnat) assert.equal(all[x.name], false, `network all reached ${x.name} with only CGNAT opened`);
        const proxied = await attempts(t, world, { allow: allowEverything(world) });
        for (const k of ['CONNECT', 'CONNECT mapped', 'CONNECT pinned', 'GET', 'SOCKS', 'SOCKS pinned'])
          assert.equal(proxied[`${cgnat.name} ${k}`], true, `the proxy refused the opened ${cgnat.name} by ${k}`);
        for (const [k, ok] of Object.entries(proxied))
          if (!k.startsWith('public control') && !k.startsWith(cgnat.name))
            assert.equal(ok, false, `the proxy let ${k} through with only CGNAT opened`);
        await sleep(200);
        assert.deepEqual(
          [...world.hits.keys()].filter((k) => k !== 'public control' && k !== cgnat.name),
          [],
          'a closed address accepted a connection from a sandbox',
        );
      });
    } finally {
      world.close();
    }
  },
);
