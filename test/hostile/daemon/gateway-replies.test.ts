/**
 * Hostile replicas: a service whose replica answers the gateway with hostile HTTP — headers that
 * never end, a body that never ends, a head trickled a byte a second (slowloris), a forged second
 * response on a kept-alive connection and a header smuggling a bare CR (response splitting). Each
 * must cost the daemon bounded memory and time, never reach another client, and leave other
 * services answering. The daemon runs in a child process so its peak resident set (VmHWM, reset
 * before each case) is its own. The hostile programs run in the replicas' sandboxes, guarded.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client } from '@realm/sdk';
import { namespaceSkipReason, removeTestDirs } from '../../helpers/daemon.js';
import { type DaemonRef, assertClean, assertHealthy, pyGuard } from '../common.js';

const skip = await namespaceSkipReason();
/** How far the daemon's peak resident set may rise during a case. */
const BOUND_BYTES = 100 * 1024 ** 2;
/** The most a case waits for the gateway's answer: past it, the daemon is holding the request without end. */
const ANSWER_WITHIN_MS = 120_000;

let child: ReturnType<typeof spawn> | undefined;
let ref: (DaemonRef & { pid: number; gateway: string }) | undefined;
let client: Client;

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${ref!.pid}/status`, 'utf8'));
  assert.ok(m, `no ${field} for the daemon`);
  return Number(m[1]) * 1024;
}

function resetPeak(): number {
  writeFileSync(`/proc/${ref!.pid}/clear_refs`, '5');
  return status('VmRSS');
}

/** The hostile server, guarded: it answers every request on 127.0.0.1:8000 the way MODE says. */
function hostile(dataDir: string): string {
  return `${pyGuard(dataDir)}import socket, threading, time
mode = sys.argv[1]
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', 8000)); s.listen(64)
def request(c, buf):
    while b'\\r\\n\\r\\n' not in buf:
        d = c.recv(65536)
        if not d: return None
        buf += d
    return buf[buf.index(b'\\r\\n\\r\\n') + 4:]
def handle(c):
    try:
        buf = b''
        while True:
            buf = request(c, buf)
            if buf is None: return
            if mode == 'headers':
                c.sendall(b'HTTP/1.1 200 OK\\r\\n')
                line = b'X-Big: ' + b'a' * 8000 + b'\\r\\n'
                while True: c.sendall(line)
            elif mode == 'body':
                c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n')
                chunk = b'x' * 65536
                while True: c.sendall(chunk)
            elif mode == 'slow':
                c.sendall(b'HTTP/1.1 200 OK\\r\\n')
                while True:
                    c.sendall(b'X'); time.sleep(1)
            elif mode == 'forge':
                c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\n\\r\\nreal')
                time.sleep(0.3)
                c.sendall(b'HTTP/1.1 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nforged')
            elif mode == 'cr':
                c.sendall(b'HTTP/1.1 200 OK\\r\\nX-Note: a\\rSet-Cookie: evil=1\\r\\nContent-Length: 4\\r\\n\\r\\nreal')
    except OSError:
        pass
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
`;
}

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A GET through the gateway, its body read up to `readMax` bytes (then the connection is dropped). */
function get(path: string, readMax = 1 << 20): Promise<Answer> {
  return new Promise((resolve) => {
    const req = httpRequest(`${ref!.gateway}${path}`, { agent: false }, (res) => {
      let body = '';
      let n = 0;
      res.on('data', (d: Buffer) => {
        n += d.length;
        if (body.length < 4096) body += d.toString('latin1');
        if (n >= readMax) {
          res.destroy();
          resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
        }
      });
      const done = (): void => resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      res.on('end', done);
      res.on('error', done);
      res.on('aborted', done);
    });
    req.on('error', (e) => resolve({ status: 0, body: e.message, headers: {} }));
    req.end();
  });
}

async function within<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ANSWER_WITHIN_MS / 1000} s`)), ANSWER_WITHIN_MS);
  });
  try {
    return await Promise.race([p, limit]);
  } finally {
    clearTimeout(timer);
  }
}

async function healthy(name: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const s = await client.services.get(name);
    if (s.healthy >= 1) return;
    await sleep(100);
  }
  throw new Error(`service ${name} never got healthy`);
}

/** The well-behaved service answers, during and after each case. */
async function goodAnswers(): Promise<void> {
  const a = await within('the good service', get('/good/index.html'));
  assert.equal(a.status, 200);
  assert.equal(a.body, 'good\n');
}

void describe('hostile replies from a replica to the gateway', { skip }, () => {
  before(async () => {
    if (skip) return;
    const script = fileURLToPath(new URL('./gateway-daemon.js', import.meta.url));
    child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
    const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
    const info = JSON.parse(line) as { url: string; token: string; gateway: string; dataDir: string; cgroupRoot: string };
    ref = { ...info, pid: child.pid! };
    client = new Client({ url: info.url, token: info.token });
    await client.services.push({
      name: 'good',
      image: 'host',
      command: 'echo good > index.html && exec /usr/bin/python3 -m http.server --bind 127.0.0.1 8000',
      port: 8000,
    });
    const program = hostile(info.dataDir);
    for (const mode of ['headers', 'body', 'slow', 'forge', 'cr'])
      await client.services.push({
        name: mode,
        image: 'host',
        command: `cat > h.py <<'PY'\n${program}\nPY\nexec /usr/bin/python3 h.py ${mode}`,
        port: 8000,
        memory: '128m',
      });
    for (const name of ['good', 'headers', 'body', 'slow', 'forge', 'cr']) await healthy(name);
  });

  after(async () => {
    if (!child) return;
    child.stdin!.end();
    if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    if (ref) {
      await assertClean(ref);
      removeTestDirs(ref);
    }
  });

  const bounded = async (what: string, before: number): Promise<void> => {
    const grew = status('VmHWM') - before;
    assert.ok(grew < BOUND_BYTES, `${what}: the daemon's resident set rose by ${Math.round(grew / 1024 ** 2)} MB`);
    await assertHealthy(ref!);
    await goodAnswers();
  };

  void it('headers that never end: refused (5xx), memory bounded', async () => {
    const before = resetPeak();
    const answers = await within('endless headers', Promise.all([0, 1, 2, 3].map(() => get('/headers/'))));
    for (const a of answers) assert.ok(a.status >= 500, `status ${a.status}`);
    await bounded('endless headers', before);
  });

  void it('a body that never ends: streamed to a client that reads, held back for one that does not', async () => {
    const before = resetPeak();
    // Readers take 64 MB each and hang up; a client that never reads stalls its replica's writes.
    const deaf = httpRequest(`${ref!.gateway}/body/`, { agent: false }, (res) => res.pause());
    deaf.on('error', () => undefined);
    deaf.end();
    const answers = await within('an endless body', Promise.all([0, 1].map(() => get('/body/', 64 << 20))));
    for (const a of answers) assert.equal(a.status, 200);
    await goodAnswers();
    await sleep(2000);
    deaf.destroy();
    await bounded('an endless body', before);
  });

  void it('a head trickled a byte a second: cut off, the client answered', async () => {
    const before = resetPeak();
    const [a, b] = await within('a slowloris answer', Promise.all([get('/slow/'), (async () => (await goodAnswers(), 0))()]));
    assert.ok((a?.status ?? 0) >= 500, `status ${a?.status}`);
    assert.equal(b, 0);
    await bounded('a slowloris answer', before);
  });

  void it('a forged second response on a kept-alive connection never reaches the next client', async () => {
    for (let i = 0; i < 5; i++) {
      const a = await within('forge', get('/forge/'));
      assert.equal(a.status, 200);
      assert.equal(a.body, 'real');
      // The forged answer arrives on the idle connection meanwhile.
      await sleep(600);
    }
  });

  void it('a header smuggling a bare CR neither splits the response nor stops the daemon', async () => {
    const before = resetPeak();
    for (let i = 0; i < 3; i++) {
      const a = await within('bare CR', get('/cr/'));
      assert.equal(a.headers['set-cookie'], undefined);
      assert.ok(a.status === 200 || a.status >= 500, `status ${a.status}`);
    }
    await bounded('a bare CR', before);
  });
});
