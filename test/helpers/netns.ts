/**
 * "The outside world" for network tests that must not leave the machine: a network namespace of
 * the test's own, joined to the host by a veth pair on a /30 of 198.18.0.0/15, with an HTTP server in it.
 * That range (RFC 2544, for benchmarks) is never routed on the internet yet is not private, so
 * realm treats it as the public internet it stands for: no range needs opening, and it cannot
 * collide with the private networks the host itself is on.
 * A sandbox with network "all" reaches it the way it would reach any remote host (through its
 * NAT and the host's routing); nothing else is ever contacted.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';

export interface OutsideWorld {
  /** http://ADDR:PORT/ — answers `body`; /big answers `bigBytes` bytes. */
  url: string;
  body: string;
  bigBytes: number;
  close(): void;
}

const IP = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip'].find((p) => existsSync(p));

/** Why no outside world can be made here (printed as a skip reason), or undefined. */
export function outsideWorldSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'making a network namespace needs root';
  if (!IP) return 'iproute2 (ip) is not installed';
  return undefined;
}

const SERVER = `import http.server, sys
body = sys.argv[2].encode()
big = b'x' * int(sys.argv[3])
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        data = big if self.path == '/big' else body
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer((sys.argv[1], 8080), H)
print('ready', flush=True)
s.serve_forever()
`;

/** Make the namespace and start its server; `close()` removes both. */
export async function outsideWorld(bigBytes = 8 << 20): Promise<OutsideWorld> {
  const ip = IP;
  if (!ip) throw new Error('ip is not installed');
  const tag = randomBytes(3).toString('hex');
  const name = `realm-t-${tag}`;
  // A /30 in 198.18.0.0/16 picked at random: nothing of the host's or slirp's (10.0.2.0/24).
  const n = randomBytes(1)[0] ?? 1;
  const [host, far] = [`198.18.${n}.1`, `198.18.${n}.2`];
  const run = (...args: string[]): void => void execFileSync(ip, args, { stdio: 'pipe' });
  let server: ChildProcess | undefined;
  const close = (): void => {
    server?.kill('SIGKILL');
    try {
      // The veth's host end goes with its peer.
      run('netns', 'del', name);
    } catch {
      /* not made */
    }
  };
  try {
    run('netns', 'add', name);
    run('link', 'add', `rh-${tag}`, 'type', 'veth', 'peer', 'name', `rn-${tag}`);
    run('link', 'set', `rn-${tag}`, 'netns', name);
    run('addr', 'add', `${host}/30`, 'dev', `rh-${tag}`);
    run('link', 'set', `rh-${tag}`, 'up');
    run('-n', name, 'addr', 'add', `${far}/30`, 'dev', `rn-${tag}`);
    run('-n', name, 'link', 'set', `rn-${tag}`, 'up');
    run('-n', name, 'link', 'set', 'lo', 'up');
    const body = `outside-${tag}`;
    const srv = spawn(ip, ['netns', 'exec', name, '/usr/bin/python3', '-c', SERVER, far, body, String(bigBytes)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.stdout.once('data', () => resolve());
      srv.once('exit', (code) => reject(new Error(`the outside world's server exited (${code})`)));
    });
    srv.removeAllListeners('exit');
    // Read on (not closed): the server must not die of a broken pipe.
    srv.stdout.resume();
    return { url: `http://${far}:8080/`, body, bigBytes, close };
  } catch (e) {
    close();
    throw e;
  }
}
