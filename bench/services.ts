/**
 * Process services (issue 18's targets): a request through the gateway to a python http.server
 * replica p50 ≤ 1.3× a direct request to the same server on the host, and serving again ≤ 2 s
 * after the replica's process is killed (with a 200 ms restart delay, the one tests use).
 *
 * Both servers are `python3 -m http.server` serving the same small file, measured twice: as
 * HTTP/1.0 (a connection per request on each hop) and as HTTP/1.1 (connections kept alive on each
 * hop: fetch's to the host's server and the gateway's, the gateway's pooled ones to the replica);
 * requests alternate between the two so a busy machine loads both alike, after WARM_UP of each. The daemon runs in a process of its own (`realm serve --gateway 127.0.0.1:0`).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@realm/sdk';
import { PYTHON, fmt, percentile, report, runIfMain, spawnDaemon, type Target } from './lib.js';

const BENCH = 'services';
const PORT = 8000;
/** Requests each way before measuring. */
const WARM_UP = 300;
/** A Node HTTP/1.1 server of id.txt on 127.0.0.1:ARGV[1] that prints its port. */
const NODE_SERVER =
  'const s=require("http").createServer((q,r)=>r.end(require("fs").readFileSync("id.txt")));s.listen(+process.argv[1],"127.0.0.1",()=>console.log("port "+s.address().port))';
const COMMAND = `head -c8 /dev/urandom | od -An -tx1 | tr -d " \\n" > id.txt && exec ${PYTHON} -m http.server ${PORT}`;

async function timed(url: string): Promise<{ ms: number; status: number; text: string }> {
  const t0 = process.hrtime.bigint();
  const res = await fetch(url);
  const text = await res.text();
  return { ms: Number(process.hrtime.bigint() - t0) / 1e6, status: res.status, text };
}

export async function main(opts: { requests?: number; crashes?: number } = {}): Promise<Target[]> {
  const requests = opts.requests ?? 400;
  const crashes = opts.crashes ?? 5;
  console.log(
    `== ${BENCH}: python http.server as a service vs the same on the host, ${requests} requests each; ${crashes} crashes`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-services-'));
  const d = await spawnDaemon(BENCH, ['--gateway', '127.0.0.1:0']);
  const directs: ReturnType<typeof spawn>[] = [];
  /** The server on the host: `argv` then the port (0: any; it prints `port N`); its URL. */
  const hostServer = async (argv: string[]): Promise<string> => {
    const p = spawn(argv[0] ?? '', [...argv.slice(1), '0'], { cwd: dir, stdio: ['ignore', 'pipe', 'ignore'] });
    directs.push(p);
    const port = await new Promise<string>((resolve) =>
      p.stdout?.on('data', (b: Buffer) => {
        const m = /port (\d+)/.exec(b.toString());
        if (m?.[1]) resolve(m[1]);
      }),
    );
    return `http://127.0.0.1:${port}/id.txt`;
  };
  try {
    writeFileSync(join(dir, 'id.txt'), 'host');
    const c = new Client({ socketPath: d.socket, token: '' });
    /** p50s of `requests` requests each way, interleaved, to the service and the host's server. */
    const measure = async (name: string, label: string, argv: string[]): Promise<{ gw: number; host: number }> => {
      const quoted = argv.map((a) => `'${a}'`).join(' ');
      const command = `head -c8 /dev/urandom | od -An -tx1 | tr -d " \\n" > id.txt && exec ${quoted} ${PORT}`;
      await c.services.push({ name, image: 'host', command, port: PORT, restart: { delay: '200ms' } });
      const gw = `${d.gateway ?? ''}/${name}/id.txt`;
      const host = await hostServer(argv);
      for (let i = 0; i < 600 && (await timed(gw).catch(() => ({ status: 0 }))).status !== 200; i++)
        await new Promise((r) => setTimeout(r, 50));
      // Warm: a gateway serving a service has run its proxy path often enough for V8 to optimise it
      // (the first few hundred requests through a fresh daemon run ~0.1 ms slower each).
      for (let i = 0; i < WARM_UP; i++) await Promise.all([timed(gw), timed(host)]);
      const viaGw: number[] = [];
      const viaHost: number[] = [];
      for (let i = 0; i < requests; i++) {
        const a = await timed(gw);
        const b = await timed(host);
        if (a.status !== 200 || b.status !== 200) throw new Error(`status ${a.status} / ${b.status}`);
        viaGw.push(a.ms);
        viaHost.push(b.ms);
      }
      viaGw.sort((x, y) => x - y);
      viaHost.sort((x, y) => x - y);
      console.log(
        `${label}: direct p50 ${fmt(percentile(viaHost, 50), 3)} ms p99 ${fmt(percentile(viaHost, 99), 3)} ms; through the gateway p50 ${fmt(percentile(viaGw, 50), 3)} ms p99 ${fmt(percentile(viaGw, 99), 3)} ms`,
      );
      return { gw: percentile(viaGw, 50), host: percentile(viaHost, 50) };
    };
    // Kept alive: the gateway keeps its connections to the replica as the client keeps its own to
    // the host's server. A Node server: python's http.server as HTTP/1.1 writes its head and body
    // apart and waits out delayed ACKs on a kept connection (40 ms a request, either way).
    const kept = await measure('node11', 'node http, HTTP/1.1 kept alive', ['/usr/bin/node', '-e', NODE_SERVER]);
    await c.services.remove('node11');
    const fresh = await measure('py', 'python http.server, HTTP/1.0', [PYTHON, '-m', 'http.server', '--bind', '127.0.0.1']);
    const gwP50 = fresh.gw;
    const hostP50 = fresh.host;
    const gw = `${d.gateway ?? ''}/py/id.txt`;
    // Crash: kill the replica's process, then ask until a new replica answers.
    const back: number[] = [];
    for (let i = 0; i < crashes; i++) {
      const s = await c.services.get('py');
      const r = s.replicaList[0];
      if (!r || s.healthy !== 1) throw new Error('no healthy replica');
      const before = (await timed(gw)).text;
      const t0 = Date.now();
      await c.request('POST', `/v1/sandboxes/${r.sandbox}/processes/${r.process}/signal`, { signal: 'SIGKILL' });
      for (;;) {
        const res = await timed(gw).catch(() => ({ status: 0, text: '' }));
        if (res.status === 200 && res.text !== before) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      back.push(Date.now() - t0);
      // The back-off doubles with each crash: wait out a fresh push for the next measure.
      await c.services.remove('py');
      await c.services.push({ name: 'py', image: 'host', command: COMMAND, port: PORT, restart: { delay: '200ms' } });
      for (let j = 0; j < 600 && (await timed(gw).catch(() => ({ status: 0 }))).status !== 200; j++)
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
    back.sort((x, y) => x - y);
    console.log(`serving again after a crash: ${back.map((x) => `${x} ms`).join(', ')}`);
    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'gateway p50 / direct p50 (python http.server, HTTP/1.0: a connection per request)',
        value: gwP50 / hostP50,
        limit: 1.3,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'gateway p50 / direct p50 (node http server, HTTP/1.1 kept alive)',
        value: kept.gw / kept.host,
        limit: 1.3,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'serving again after a replica crash (median)',
        value: percentile(back, 50) / 1000,
        limit: 2,
        op: '<=',
        unit: ' s',
      },
    ];
    report(targets);
    return targets;
  } finally {
    for (const p of directs) p.kill();
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
