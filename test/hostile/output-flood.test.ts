/**
 * Hostile output: programs that print megabytes one byte per write, and clients that never read
 * what they asked for. The daemon runs in a child process so its own memory can be measured: the
 * peak resident set (VmHWM, reset through clear_refs before each case) may grow by a bounded
 * amount only, and /v1/health must keep answering. The bound is generous (output kept as one
 * object per write took the daemon past +1 GB here; realm now holds a few MB of pieces).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { type Socket, connect } from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Sandbox } from '@realm/sdk';
import { removeTestDirs, testDriverSkipReason } from '../helpers/daemon.js';
import { type DaemonRef, GVISOR, MICROVM, assertClean, assertHealthy, pyGuard, secs } from './common.js';

const skip = await testDriverSkipReason();

/** Bytes each flooding program prints, one write per byte (a syscall costs far more under gvisor and in an emulated VM). */
const FLOOD_BYTES = GVISOR || MICROVM ? 200_000 : 4_000_000;
/** How far the daemon's peak resident set may rise during a case. */
const BOUND_BYTES = 200 * 1024 ** 2;

let child: ReturnType<typeof spawn> | undefined;
let ref: (DaemonRef & { pid: number }) | undefined;
let client: Client;
/** The child daemon's admin token (every TCP request wants one). */
let token = '';

function status(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${ref!.pid}/status`, 'utf8'));
  assert.ok(m, `no ${field} for the daemon`);
  return Number(m[1]) * 1024;
}

/** Forget the daemon's peak so far: VmHWM restarts from its present resident set. */
function resetPeak(): number {
  writeFileSync(`/proc/${ref!.pid}/clear_refs`, '5');
  return status('VmRSS');
}

/** A guarded Python program printing `bytes` in writes of `size` bytes. */
function flood(dataDir: string, bytes = FLOOD_BYTES, size = 1): string {
  return `${pyGuard(dataDir)}w = os.write
b = b'x' * ${size}
for _ in range(${Math.ceil(bytes / size)}):
    w(1, b)
`;
}

/** A client that sends one request and never reads the answer (its socket stays paused). */
async function deafClient(url: string, method: string, path: string, body?: unknown): Promise<Socket> {
  const u = new URL(url);
  const sock = connect(Number(u.port), u.hostname);
  await once(sock, 'connect');
  sock.pause();
  const payload = body === undefined ? '' : JSON.stringify(body);
  sock.write(
    `${method} ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n${body === undefined ? '' : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n`}\r\n${payload}`,
  );
  return sock;
}

before(async () => {
  if (skip) return;
  const script = fileURLToPath(new URL('./fd-daemon.js', import.meta.url));
  child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const info = JSON.parse(line) as { url: string; token: string; dataDir: string; cgroupRoot: string };
  token = info.token;
  ref = { ...info, pid: child.pid! };
  client = new Client({ url: info.url, token: info.token });
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

void test("four execs printing megabytes one byte per write leave the daemon's memory bounded", { skip }, async (t) => {
  const sb = await Sandbox.create({ memory: '256m', cpus: 2 }, client);
  try {
    await sb.exec(['/bin/true']); // the first exec's own costs are not the flood's
    const before = resetPeak();
    const results = await Promise.all(
      [0, 1, 2, 3].map(() => sb.exec(['/usr/bin/python3', '-c', flood(ref!.dataDir)], { timeout: secs(600) })),
    );
    const peak = status('VmHWM');
    t.diagnostic(
      `resident set ${Math.round(before / 1024 ** 2)} MB before, ${Math.round(peak / 1024 ** 2)} MB at the peak; walls ${results.map((r) => r.wallMs).join(', ')} ms`,
    );
    for (const r of results) {
      assert.equal(r.verdict, 'ok', `${r.verdict}: ${r.stderr.slice(0, 300)}`);
      assert.equal(r.stdout.length, FLOOD_BYTES);
    }
    const grew = peak - before;
    assert.ok(
      grew < BOUND_BYTES,
      `the daemon's resident set rose by ${Math.round(grew / 1024 ** 2)} MB for ${(4 * FLOOD_BYTES) / 1e6} MB of output (bound ${BOUND_BYTES / 1024 ** 2} MB)`,
    );
    await assertHealthy(ref!);
  } finally {
    await sb.destroy();
  }
});

void test(
  'clients that never read a flood of output cost the daemon bounded memory, and it keeps answering',
  { skip },
  async (t) => {
    const sb = await Sandbox.create({ memory: '256m', cpus: 2 }, client);
    const socks: Socket[] = [];
    try {
      await sb.exec(['/bin/true']);
      const before = resetPeak();
      // A background process floods 1 GB; a client follows its output and never reads.
      const proc = await sb.processes.start(['/usr/bin/python3', '-c', flood(ref!.dataDir, 1_000_000_000, 64 * 1024)]);
      socks.push(await deafClient(ref!.url, 'GET', `/v1/sandboxes/${sb.id}/processes/${proc.id}/output`));
      // An exec streams a flood of one-byte writes to a client that never reads.
      socks.push(
        await deafClient(ref!.url, 'POST', `/v1/sandboxes/${sb.id}/exec/stream`, {
          command: ['/usr/bin/python3', '-c', flood(ref!.dataDir)],
          timeout: secs(600),
        }),
      );
      // The daemon answers while the flood lasts (a liveness check: 5 s is far beyond any normal answer).
      let exited = false;
      for (let i = 0; i < 240 && !exited; i++) {
        await assertHealthy(ref!);
        exited = (await proc.refresh()).status === 'exited';
        if (!exited) await sleep(500);
      }
      assert.ok(exited, 'the flooding background process did not end');
      await assertHealthy(ref!);
      const grew = status('VmHWM') - before;
      t.diagnostic(`resident set ${Math.round(before / 1024 ** 2)} MB before, +${Math.round(grew / 1024 ** 2)} MB at the peak`);
      assert.ok(
        grew < BOUND_BYTES,
        `the daemon's resident set rose by ${Math.round(grew / 1024 ** 2)} MB while clients did not read (bound ${BOUND_BYTES / 1024 ** 2} MB)`,
      );
      // The process's kept output is still there for a client that reads.
      let kept = 0;
      for await (const ev of proc.output(undefined, { follow: false }))
        if (ev.type === 'stdout') kept += Buffer.byteLength(ev.data);
      assert.ok(kept >= 1024 * 1024 - 64 * 1024 && kept <= 2 * 1024 * 1024, `kept ${kept} bytes of the process's output`);
    } finally {
      for (const s of socks) s.destroy();
      await sb.destroy();
    }
  },
);
