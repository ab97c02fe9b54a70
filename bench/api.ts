/**
 * The API itself: streamed exec's time to first output byte against a buffered exec's total
 * (`echo hi`), GET /v1/sandboxes/ID latency, and 1,000 requests/s for 30 s (autocannon) against a
 * daemon in its own process — with a bare node:http server answering the same JSON as the
 * baseline, measured in the same run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Sandbox } from '@realm/sdk';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { removeTestDirs } from '../test/helpers/daemon.js';
import { fmt, interleave, printLatencies, report, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'api';
const MAIN = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

async function waitUp(url: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    try {
      if ((await fetch(`${url}/v1/health`)).ok) return;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing answers at ${url}`);
}

function freePortUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/** A bare node:http server in its own process answering every GET with `body`. */
function bareServer(port: number, body: string): ChildProcess {
  const code = `require('http').createServer((q,s)=>{s.writeHead(200,{'content-type':'application/json'});s.end(${JSON.stringify(body)})}).listen(${port},'127.0.0.1')`;
  return spawn(process.execPath, ['-e', code], { stdio: 'ignore' });
}

function getOnce(agent: Agent, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(performance.now() - t0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * autocannon in a process of its own: the load generator must not share a heap (and its GC
 * pauses) with whatever the benchmark process did before.
 */
async function load(url: string, token?: string): Promise<{ p50: number; p99: number; rps: number; errors: number }> {
  const cli = join(PACKAGE_ROOT, 'node_modules', 'autocannon', 'autocannon.js');
  const child = spawn(
    process.execPath,
    [cli, '-c', '20', '-R', '1000', '-d', '30', ...(token ? ['-H', `authorization=Bearer ${token}`] : []), '-j', url],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.once('exit', r));
  const r = JSON.parse(out) as {
    latency: { p50: number; p99: number };
    requests: { average: number };
    errors: number;
    non2xx: number;
    timeouts: number;
  };
  return { p50: r.latency.p50, p99: r.latency.p99, rps: r.requests.average, errors: r.errors + r.non2xx + r.timeouts };
}

export async function main(): Promise<Target[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'realm-bench-api-'));
  const cgroupRoot = `realm-bench-${process.pid}`;
  const port = 7400 + Math.floor(Math.random() * 500);
  const url = freePortUrl(port);
  const daemon = spawn(
    process.execPath,
    [
      MAIN,
      'serve',
      '--listen',
      `127.0.0.1:${port}`,
      '--data-dir',
      dataDir,
      '--socket',
      join(dataDir, 'api.sock'),
      '--warm',
      '1',
      '--gateway',
      'off',
    ],
    {
      stdio: 'ignore',
      env: { ...process.env, REALM_CGROUP_ROOT: cgroupRoot },
    },
  );
  let bare: ChildProcess | undefined;
  try {
    await waitUp(url);
    const client = new Client({ url, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() });
    const sb = await Sandbox.create({}, client);

    // 1. Time to first output byte of a streamed exec against a buffered exec's total.
    const samples = await interleave(
      [
        {
          name: 'buffered',
          sample: async () => {
            const t0 = performance.now();
            await sb.exec('echo hi');
            return performance.now() - t0;
          },
        },
        {
          name: 'stream first byte',
          sample: async () => {
            const t0 = performance.now();
            let first = NaN;
            for await (const ev of sb.execStream('echo hi'))
              if (ev.type === 'stdout' && Number.isNaN(first)) first = performance.now() - t0;
            return first;
          },
        },
      ],
      100,
      10,
    );
    const buffered = summarize(samples.get('buffered') ?? []);
    const ttfb = summarize(samples.get('stream first byte') ?? []);
    console.log('== api: streamed exec, time to first byte vs buffered exec total (echo hi); n=100 interleaved');
    printLatencies([
      ['buffered exec total (ms)', buffered],
      ['streamed first byte (ms)', ttfb],
    ]);

    // 2. GET /v1/sandboxes/ID latency over a keep-alive connection, against the bare server.
    const path = `/v1/sandboxes/${sb.id}`;
    const body = JSON.stringify(sb.info);
    const barePort = port + 1000;
    bare = bareServer(barePort, body);
    await waitUpBare(freePortUrl(barePort));
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = await interleave(
      [
        { name: 'daemon', sample: () => getOnce(agent, `${url}${path}`) },
        { name: 'bare', sample: () => getOnce(agent, `${freePortUrl(barePort)}${path}`) },
      ],
      2000,
      200,
    );
    agent.destroy();
    const g = summarize(get.get('daemon') ?? []);
    const gb = summarize(get.get('bare') ?? []);
    console.log(`\n== api: GET ${path.replace(sb.id, 'ID')} over keep-alive, n=2000 interleaved`);
    printLatencies([
      ['daemon (ms)', g],
      ['bare node:http, same body (ms)', gb],
    ]);

    // 3. 1,000 requests/s for 30 s.
    console.log('\n== api: 1000 req/s for 30 s (autocannon, 20 connections), daemon then bare');
    const ld = await load(`${url}${path}`, client.token);
    const lb = await load(`${freePortUrl(barePort)}${path}`);
    console.log(`daemon: ${fmt(ld.rps, 0)} req/s  p50 ${ld.p50} ms  p99 ${ld.p99} ms  errors ${ld.errors}`);
    console.log(`bare:   ${fmt(lb.rps, 0)} req/s  p50 ${lb.p50} ms  p99 ${lb.p99} ms  errors ${lb.errors}`);
    console.log(`ratio p99 daemon/bare: ${fmt(ld.p99 / Math.max(lb.p99, 0.001))}x`);
    await sb.destroy();

    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'p50 stream first byte / buffered total',
        value: ttfb.p50 / buffered.p50,
        limit: 1.2,
        op: '<=',
        unit: 'x',
      },
      { bench: BENCH, name: 'p50 GET /v1/sandboxes/ID', value: g.p50, limit: 1, op: '<=', unit: ' ms' },
      {
        bench: BENCH,
        name: 'p99 at 1000 req/s for 30 s',
        value: ld.errors ? Infinity : ld.p99,
        limit: 20,
        op: '<=',
        unit: ' ms',
      },
      { bench: BENCH, name: 'req/s sustained', value: ld.rps, limit: 990, op: '>=', unit: '' },
    ];
    report(targets);
    return targets;
  } finally {
    bare?.kill();
    daemon.kill('SIGTERM');
    await new Promise((r) => daemon.once('exit', r));
    removeTestDirs({ dataDir, cgroupRoot });
  }
}

async function waitUpBare(url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url);
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 30));
    }
  }
}

runIfMain(import.meta.url, main);
