/**
 * Preview URLs: a request to python's http.server bound to 127.0.0.1 inside a namespace sandbox,
 * through the gateway (`Host: 8000-<id>.realm.localhost`, a bearer token) against a direct
 * request from the host to the same server in its network namespace (a connection made there by
 * the same native dial, with no proxy in between). One fresh connection per request on both (the
 * server answers HTTP/1.0 and closes), samples interleaved; target p50 ratio ≤ 1.3×. The daemon
 * runs in a process of its own (\`realm serve\`), as users run it.
 */
import { execFileSync } from 'node:child_process';
import { Agent, type RequestOptions, request } from 'node:http';
import type { Duplex } from 'node:stream';
import { Client, Sandbox, tokens } from '@realm/sdk';
import { dialNetns } from '../src/drivers/shared/netns-dial.js';
import { fmt, interleave, report, runIfMain, spawnDaemon, summarize, type Target } from './lib.js';

const BENCH = 'preview';

function get(opts: RequestOptions): Promise<number> {
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    request(opts, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(Number(process.hrtime.bigint() - t0) / 1e6)
          : reject(new Error(`status ${res.statusCode}`)),
      );
    })
      .on('error', reject)
      .end();
  });
}

export async function main(opts: { n?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 400;
  console.log(`== ${BENCH}: python http.server on a sandbox's 127.0.0.1:8123, ${n} requests each way, interleaved`);
  const d = await spawnDaemon(BENCH, ['--gateway', '127.0.0.1:0']);
  try {
    const client = new Client({ socketPath: d.socket, token: '' });
    const token = (await tokens.create('bench', client)).token;
    const sb = await Sandbox.create({}, client);
    try {
      await sb.files.write('index.html', 'hello\n');
      await sb.processes.start('/usr/bin/python3 -m http.server --bind 127.0.0.1 8123');
      // Kept alive: a Node server (python's http.server as HTTP/1.1 writes head and body apart and
      // waits out delayed ACKs on a kept connection, 40 ms a request whoever asks).
      await sb.processes.start(
        `/usr/bin/node -e 'require("http").createServer((q,r)=>r.end("hello\\n")).listen(8124,"127.0.0.1")'`,
      );
      for (const port of [8123, 8124])
        for (let i = 0; i < 100; i++) {
          const r = await sb.exec(['/usr/bin/python3', '-c', `import socket; socket.create_connection(("127.0.0.1", ${port}))`]);
          if (r.exitCode === 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
      // Any process of the sandbox names its network namespace: the server itself.
      const pid = execFileSync('pgrep', ['-f', 'http.server --bind 127.0.0.1 8123'], { encoding: 'utf8' }).trim().split('\n')[0];
      const gw = new URL(d.gateway ?? '');
      const headers = { host: `8123-${sb.id}.realm.localhost:${gw.port}`, authorization: `Bearer ${token}` };
      const headers11 = { ...headers, host: `8124-${sb.id}.realm.localhost:${gw.port}` };
      const kept = new (class extends Agent {
        override createConnection(): Duplex {
          return dialNetns(`/proc/${pid ?? ''}/ns/net`, 8124);
        }
      })({ keepAlive: true });
      const samples = await interleave(
        [
          {
            name: 'direct',
            sample: () => get({ path: '/index.html', createConnection: () => dialNetns(`/proc/${pid ?? ''}/ns/net`, 8123) }),
          },
          { name: 'preview', sample: () => get({ host: '127.0.0.1', port: gw.port, path: '/index.html', headers }) },
          // HTTP/1.1: the direct client keeps its connection, as the gateway keeps its pooled ones.
          { name: 'direct-kept', sample: () => get({ path: '/index.html', agent: kept }) },
          {
            name: 'preview-kept',
            sample: () => get({ host: '127.0.0.1', port: gw.port, path: '/index.html', headers: headers11 }),
          },
        ],
        n,
        20,
      );
      const direct = summarize(samples.get('direct') ?? []);
      const preview = summarize(samples.get('preview') ?? []);
      const directKept = summarize(samples.get('direct-kept') ?? []);
      const previewKept = summarize(samples.get('preview-kept') ?? []);
      kept.destroy();
      console.log(
        `HTTP/1.1 kept alive: direct p50 ${fmt(directKept.p50, 3)} ms p99 ${fmt(directKept.p99, 3)} ms; through the preview URL p50 ${fmt(previewKept.p50, 3)} ms p99 ${fmt(previewKept.p99, 3)} ms`,
      );
      console.log(
        `direct p50 ${fmt(direct.p50, 3)} ms p99 ${fmt(direct.p99, 3)} ms; through the preview URL p50 ${fmt(preview.p50, 3)} ms p99 ${fmt(preview.p99, 3)} ms`,
      );
      const targets: Target[] = [
        {
          bench: BENCH,
          name: 'preview URL p50 / direct p50 (HTTP/1.0: a connection per request)',
          value: preview.p50 / direct.p50,
          limit: 1.3,
          op: '<=',
          unit: '×',
        },
        {
          bench: BENCH,
          name: 'preview URL p50 / direct p50 (HTTP/1.1 kept alive)',
          value: previewKept.p50 / directKept.p50,
          limit: 1.3,
          op: '<=',
          unit: '×',
        },
      ];
      report(targets);
      return targets;
    } finally {
      await sb.destroy();
    }
  } finally {
    await d.stop();
  }
}

runIfMain(import.meta.url, main);
