/**
 * Networking on gVisor against the namespace driver, in the same run and the same daemon:
 *   1. an allow-list sandbox: time to first byte of a small HTTP GET through the proxy (curl's
 *      time_starttransfer inside: forwarder, daemon proxy, server), and a 32 MiB download;
 *   2. network `all`: create + first exec (cold), and a 32 MiB download from a server in a
 *      network namespace this benchmark makes (a veth pair from the host), over slirp4netns.
 * Servers are on host loopback (127.0.0.2, reached through a pinned name) or in that namespace.
 */
import { type ChildProcess, execSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Sandbox } from '@realm/sdk';
import { type TestDaemon, gvisorSkipReason, removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { MiB, fmt, interleave, printLatencies, progress, progressDone, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'gvisor-net';
const BIG = 32 * MiB;
type Drv = 'gvisor' | 'namespace';
const DRIVERS: Drv[] = ['gvisor', 'namespace'];

/** curl inside: "TTFB_S SPEED_BYTES_PER_S"; throws unless the status is 200. */
async function curl(sb: Sandbox, url: string, proxied: boolean): Promise<{ ttfbMs: number; bytesPerS: number }> {
  const r = await sb.exec(
    `curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{speed_download}' ${proxied ? '' : '--noproxy "*" '}${url}`,
    { timeout: '60s' },
  );
  const [code, ttfb, speed] = r.stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl ${url}: ${r.stdout} ${r.stderr}`);
  return { ttfbMs: Number(ttfb) * 1000, bytesPerS: Number(speed) };
}

async function proxied(t: TestDaemon, port: number, n: number): Promise<void> {
  const boxes = Object.fromEntries(
    await Promise.all(
      DRIVERS.map(async (d) => [d, await Sandbox.create({ driver: d, allow: ['bench.example.com'] }, t.client)] as const),
    ),
  ) as Record<Drv, Sandbox>;
  try {
    console.log(
      `== ${BENCH}: allow-list sandbox, GET of 2 bytes through the proxy, time to first byte inside (curl); n=${n} each, interleaved`,
    );
    const samples = await interleave(
      DRIVERS.map((d) => ({
        name: d,
        sample: async () => (await curl(boxes[d], `http://bench.example.com:${port}/`, true)).ttfbMs,
      })),
      n,
      3,
      (i) => progress(`${BENCH} ttfb: ${i}/${n}`),
    );
    progressDone();
    const gv = summarize(samples.get('gvisor') ?? []);
    const ns = summarize(samples.get('namespace') ?? []);
    printLatencies([
      ['gvisor TTFB via proxy (ms)', gv],
      ['namespace TTFB via proxy (ms)', ns],
    ]);
    console.log(`ratio gvisor/namespace TTFB via proxy: p50 ${fmt(gv.p50 / ns.p50)}x`);
    for (const d of DRIVERS) {
      const speeds: number[] = [];
      for (let i = 0; i < 3; i++)
        speeds.push((await curl(boxes[d], `http://bench.example.com:${port}/big`, true)).bytesPerS / MiB);
      console.log(`${d} 32 MiB download via proxy: ${speeds.map((s) => fmt(s, 0)).join(', ')} MiB/s`);
    }
  } finally {
    for (const sb of Object.values(boxes)) await sb.destroy();
  }
}

async function networkAll(t: TestDaemon, n: number): Promise<void> {
  const ns = `realm-bn${process.pid}`;
  const veth = `rbn${process.pid % 100000}`;
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-net-'));
  let server: ChildProcess | undefined;
  const sh = (cmd: string): string => execSync(cmd, { encoding: 'utf8' });
  try {
    sh(`ip netns add ${ns}`);
    sh(`ip link add ${veth}h type veth peer name ${veth}n && ip link set ${veth}n netns ${ns}`);
    sh(`ip addr add 198.19.8.1/30 dev ${veth}h && ip link set ${veth}h up`);
    sh(`ip netns exec ${ns} sh -c 'ip addr add 198.19.8.2/30 dev ${veth}n && ip link set ${veth}n up && ip link set lo up'`);
    writeFileSync(join(dir, 'big'), Buffer.alloc(BIG));
    server = spawn(
      'ip',
      ['netns', 'exec', ns, '/usr/bin/python3', '-m', 'http.server', '18099', '--bind', '198.19.8.2', '--directory', dir],
      { stdio: 'ignore' },
    );
    for (let i = 0; i < 100; i++) {
      try {
        if ((await fetch('http://198.19.8.2:18099/')).ok) break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    console.log(`== ${BENCH}: network all, cold create + first exec(['true']); n=${n} each, interleaved`);
    let last: Sandbox | undefined;
    const starts = await interleave(
      DRIVERS.map((d) => ({
        name: d,
        sample: async () => {
          const t0 = performance.now();
          last = await Sandbox.create({ driver: d, network: 'all' }, t.client);
          await last.exec(['true']);
          return performance.now() - t0;
        },
        after: async () => {
          await last?.destroy();
          last = undefined;
        },
      })),
      n,
      1,
      (i) => progress(`${BENCH} all: ${i}/${n}`),
    );
    progressDone();
    const gv = summarize(starts.get('gvisor') ?? []);
    const nsS = summarize(starts.get('namespace') ?? []);
    printLatencies([
      ['gvisor create+exec, all (ms)', gv],
      ['namespace create+exec, all (ms)', nsS],
    ]);
    for (const d of DRIVERS) {
      const sb = await Sandbox.create({ driver: d, network: 'all' }, t.client);
      try {
        const runs: { ttfbMs: number; bytesPerS: number }[] = [];
        for (let i = 0; i < 3; i++) runs.push(await curl(sb, 'http://198.19.8.2:18099/big', false));
        console.log(
          `${d} 32 MiB download over network all: ${runs.map((r) => fmt(r.bytesPerS / MiB, 0)).join(', ')} MiB/s (TTFB ${runs.map((r) => fmt(r.ttfbMs, 1)).join(', ')} ms)`,
        );
      } finally {
        await sb.destroy();
      }
    }
  } finally {
    server?.kill();
    try {
      sh(`ip link del ${veth}h 2>/dev/null; ip netns del ${ns}`);
    } catch {
      /* already gone */
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function main(opts: { n?: number; starts?: number } = {}): Promise<Target[]> {
  const skip = await gvisorSkipReason();
  if (skip) {
    console.log(`== ${BENCH}: skipped: ${skip}`);
    return [];
  }
  const big = Buffer.alloc(BIG);
  const http = createServer((req, res) => res.end(req.url === '/big' ? big : 'ok'));
  await new Promise<void>((r) => http.listen(0, '127.0.0.2', () => r()));
  const t = await startTestDaemon({ warm: 0, allowPrivate: ['127.0.0.2/32'], pinnedHosts: { 'bench.example.com': '127.0.0.2' } });
  try {
    await proxied(t, (http.address() as AddressInfo).port, opts.n ?? 20);
    await networkAll(t, opts.starts ?? 5);
  } finally {
    await t.close();
    removeTestDirs(t);
    http.close();
  }
  return [];
}

runIfMain(import.meta.url, main);
