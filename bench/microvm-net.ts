/**
 * Networking on microvm against the namespace driver, in the same run and the same daemon:
 *   1. network `all`: create + first exec (cold), and a 32 MiB download from a server in a network
 *      namespace this benchmark makes (test/helpers/netns.ts: a veth pair from the host);
 *   2. an allow-list sandbox: time to first byte of a small HTTP GET through the proxy (curl's
 *      time_starttransfer inside: the guest's forwarder, the relay over virtio-serial, the daemon's
 *      proxy, the server), and a 32 MiB download through it.
 * Servers are in that namespace or on host loopback (127.0.0.2, reached through a pinned name).
 * Where KVM cannot boot guests the VMs run under emulation; the run says so.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sandbox, nodeInfo } from '@realm/sdk';
import { type TestDaemon, microvmSkipReason, removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { outsideWorld, outsideWorldSkipReason } from '../test/helpers/netns.js';
import { MiB, fmt, interleave, printLatencies, progress, progressDone, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'microvm-net';
const BIG = 32 * MiB;
type Drv = 'microvm' | 'namespace';
const DRIVERS: Drv[] = ['microvm', 'namespace'];

/** curl inside: time to first byte and speed; throws unless the status is 200. */
async function curl(sb: Sandbox, url: string, proxied: boolean): Promise<{ ttfbMs: number; bytesPerS: number }> {
  const r = await sb.exec(
    `curl -s -o /dev/null -w '%{http_code} %{time_starttransfer} %{speed_download}' ${proxied ? '' : '--noproxy "*" '}${url}`,
    { timeout: '120s' },
  );
  const [code, ttfb, speed] = r.stdout.trim().split(' ');
  if (code !== '200') throw new Error(`curl ${url}: ${r.stdout} ${r.stderr}`);
  return { ttfbMs: Number(ttfb) * 1000, bytesPerS: Number(speed) };
}

async function downloads(sb: Sandbox, url: string, proxied: boolean): Promise<string> {
  const speeds: number[] = [];
  for (let i = 0; i < 3; i++) speeds.push((await curl(sb, url, proxied)).bytesPerS / MiB);
  return `${speeds.map((s) => fmt(s, 0)).join(', ')} MiB/s`;
}

async function networkAll(t: TestDaemon, n: number): Promise<void> {
  const skip = outsideWorldSkipReason();
  if (skip) {
    console.log(`== ${BENCH} all: skipped: ${skip}`);
    return;
  }
  const world = await outsideWorld(BIG);
  try {
    console.log(`== ${BENCH}: network all vs none, cold create + first exec(['true']); n=${n} each, interleaved`);
    let last: Sandbox | undefined;
    const subjects = DRIVERS.flatMap((d) =>
      (['all', 'none'] as const).map((network) => ({
        name: `${d} ${network}`,
        sample: async () => {
          const t0 = performance.now();
          last = await Sandbox.create({ driver: d, network }, t.client);
          await last.exec(['true']);
          return performance.now() - t0;
        },
        after: async () => {
          await last?.destroy();
          last = undefined;
        },
      })),
    );
    const starts = await interleave(subjects, n, 1, (i) => progress(`${BENCH} all: ${i}/${n}`));
    progressDone();
    printLatencies(subjects.map((s) => [`${s.name} create+exec (ms)`, summarize(starts.get(s.name) ?? [])] as const));
    for (const d of DRIVERS) {
      const sb = await Sandbox.create({ driver: d, network: 'all' }, t.client);
      try {
        console.log(`${d} 32 MiB download over network all: ${await downloads(sb, `${world.url}big`, false)}`);
      } finally {
        await sb.destroy();
      }
    }
  } finally {
    world.close();
  }
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
    const mv = summarize(samples.get('microvm') ?? []);
    const ns = summarize(samples.get('namespace') ?? []);
    printLatencies([
      ['microvm TTFB via proxy (ms)', mv],
      ['namespace TTFB via proxy (ms)', ns],
    ]);
    console.log(`ratio microvm/namespace TTFB via proxy: p50 ${fmt(mv.p50 / ns.p50)}x`);
    for (const d of DRIVERS)
      console.log(`${d} 32 MiB download via proxy: ${await downloads(boxes[d], `http://bench.example.com:${port}/big`, true)}`);
  } finally {
    for (const sb of Object.values(boxes)) await sb.destroy();
  }
}

export async function main(opts: { n?: number; starts?: number } = {}): Promise<Target[]> {
  const skip = await microvmSkipReason();
  if (skip) {
    console.log(`== ${BENCH}: skipped: ${skip}`);
    return [];
  }
  const big = Buffer.alloc(BIG);
  const http = createServer((req, res) => res.end(req.url === '/big' ? big : 'ok'));
  await new Promise<void>((r) => http.listen(0, '127.0.0.2', () => r()));
  const t = await startTestDaemon({
    warm: 0,
    microvmAllowEmulation: true,
    allowPrivate: ['127.0.0.2/32'],
    pinnedHosts: { 'bench.example.com': '127.0.0.2' },
  });
  try {
    const mv = (await nodeInfo(t.client)).drivers.find((d) => d.name === 'microvm');
    if (mv?.details.accel !== 'kvm')
      console.log(
        `${BENCH}: microVMs run under emulation here (${String(mv?.details.accel ?? '?')}): slow, and not what KVM gives`,
      );
    await networkAll(t, opts.starts ?? 3);
    await proxied(t, (http.address() as AddressInfo).port, opts.n ?? 10);
  } finally {
    await t.close();
    removeTestDirs(t);
    http.close();
  }
  return [];
}

runIfMain(import.meta.url, main);
