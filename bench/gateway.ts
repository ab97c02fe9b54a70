/**
 * The app gateway under load: a C hello compiled to wasm (`clang --target=wasm32-wasi`), pushed
 * as app `hello` to a daemon in its own process (`realm serve --gateway 127.0.0.1:0`), then hit by
 * autocannon (a process of its own, 20 connections) while a misbehaving app (`bad`: a loop stopped
 * by its 100 ms deadline) is hit at the same time by 2 more connections. Issue 15's targets: a warm
 * request p50 ≤ 2 ms and ≥ 2,000 requests/s.
 *
 * The two are measured apart: with 20 connections always waiting, a request's latency is
 * 20 / throughput (Little's law: 10 ms at 2,000/s), so "p50 ≤ 2 ms" is a warm request's own time —
 * one keep-alive connection asking again as soon as answered, timed here to the microsecond — and
 * throughput is autocannon's with 20 connections. The baseline, in the same run: the same hello
 * from a bare Node http server on this machine (what a request costs with no wasm, sandbox or
 * gateway), for ratios that mean something on a machine others load.
 */
import { execFileSync, spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, apps } from '@realm/sdk';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { fmt, report, runIfMain, spawnDaemon, type Target } from './lib.js';

const BENCH = 'gateway';
export const SOURCE = String.raw`#include <stdio.h>
#include <stdlib.h>
#include <string.h>
volatile unsigned long spins;
int main(void) {
  const char *p = getenv("PATH_INFO");
  if (p && !strcmp(p, "/loop")) for (;;) spins++;
  printf("Content-Type: text/plain\n\nhello\n");
  return 0;
}
`;

interface Load {
  p50: number;
  p99: number;
  rps: number;
  ok: number;
  non2xx: number;
  errors: number;
}

/** autocannon in a process of its own for `seconds` with `connections`. */
export function load(url: string, connections: number, seconds: number): Promise<Load> {
  const cli = join(PACKAGE_ROOT, 'node_modules', 'autocannon', 'autocannon.js');
  const child = spawn(process.execPath, [cli, '-c', String(connections), '-d', String(seconds), '-j', url], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', () => {
      try {
        const r = JSON.parse(out) as {
          latency: { p50: number; p99: number };
          requests: { average: number };
          '2xx': number;
          non2xx: number;
          errors: number;
          timeouts: number;
        };
        resolve({
          p50: r.latency.p50,
          p99: r.latency.p99,
          rps: r.requests.average,
          ok: r['2xx'],
          non2xx: r.non2xx,
          errors: r.errors + r.timeouts,
        });
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}

/** A bare Node http server answering hello, in a process of its own (as the daemon is). */
async function baseline(): Promise<{ url: string; stop: () => void }> {
  const code = `require('node:http').createServer((q, s) => { s.writeHead(200, { 'content-type': 'text/plain' }); s.end('hello\\n'); }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim())));
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

/** One keep-alive connection asking again as soon as answered for `seconds`: each request's own time, ms. */
export async function warm(url: string, seconds: number): Promise<{ p50: number; p99: number; n: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const times: number[] = [];
  const end = Date.now() + seconds * 1000;
  try {
    while (Date.now() < end) {
      const t0 = process.hrtime.bigint();
      await new Promise<void>((resolve, reject) => {
        request(url, { agent }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`warm: ${res.statusCode}`))));
        })
          .on('error', reject)
          .end();
      });
      times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  } finally {
    agent.destroy();
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), n: times.length };
}

export async function main(opts: { seconds?: number; replicas?: number } = {}): Promise<Target[]> {
  const seconds = opts.seconds ?? 10;
  const replicas = opts.replicas ?? (process.env.REALM_BENCH_REPLICAS ? Number(process.env.REALM_BENCH_REPLICAS) : undefined);
  console.log(
    `== ${BENCH}: C hello (wasm32-wasi, CGI) on the gateway, autocannon 20 connections for ${seconds} s, with a looping app (100 ms deadline) hit by 2 more connections at the same time`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-gateway-'));
  const d = await spawnDaemon(BENCH, ['--gateway', '127.0.0.1:0']);
  try {
    writeFileSync(join(dir, 'hello.c'), SOURCE);
    execFileSync('/usr/bin/clang', ['--target=wasm32-wasi', '-O2', '-o', join(dir, 'hello.wasm'), join(dir, 'hello.c')]);
    const module = readFileSync(join(dir, 'hello.wasm'));
    const client = new Client({ socketPath: d.socket, token: '' });
    await apps.push({ name: 'hello', module, ...(replicas ? { replicas } : {}) }, client);
    await apps.push({ name: 'bad', module, timeout: '100ms' }, client);
    const gw = d.gateway ?? '';
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${gw}/hello/`);
      if (r.status !== 200 || (await r.text()) !== 'hello\n') throw new Error(`warm-up: ${r.status}`);
    }
    const bare = await baseline();
    let base: Load;
    try {
      base = await load(bare.url, 20, seconds);
    } finally {
      bare.stop();
    }
    console.log(`baseline (bare Node http hello): ${fmt(base.rps, 0)} req/s  p50 ${base.p50} ms  p99 ${base.p99} ms`);
    const alone = await load(`${gw}/hello/`, 20, seconds);
    console.log(
      `hello alone: ${fmt(alone.rps, 0)} req/s (${fmt(alone.rps / base.rps)}x the baseline)  p50 ${alone.p50} ms  p99 ${alone.p99} ms  2xx ${alone.ok}  non-2xx ${alone.non2xx}  errors ${alone.errors}`,
    );
    const [hello, bad] = await Promise.all([load(`${gw}/hello/`, 20, seconds), load(`${gw}/bad/loop`, 2, seconds)]);
    console.log(
      `hello with bad hit too: ${fmt(hello.rps, 0)} req/s (${fmt(hello.rps / base.rps)}x the baseline)  p50 ${hello.p50} ms  p99 ${hello.p99} ms  2xx ${hello.ok}  non-2xx ${hello.non2xx}  errors ${hello.errors}`,
    );
    console.log(
      `bad (loop, 100 ms deadline): ${fmt(bad.rps, 1)} req/s  p50 ${bad.p50} ms  non-2xx ${bad.non2xx} (504 expected)  errors ${bad.errors}`,
    );
    const [one] = await Promise.all([warm(`${gw}/hello/`, seconds), load(`${gw}/bad/loop`, 2, seconds)]);
    console.log(
      `warm hello, one connection, bad hit too: p50 ${fmt(one.p50, 3)} ms  p99 ${fmt(one.p99, 3)} ms  (${one.n} requests)`,
    );
    const after = await fetch(`${gw}/hello/`);
    console.log(`after the load: hello answers ${after.status}`);
    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'warm hello request p50 (one connection, a bad app hit too)',
        value: one.p50,
        limit: 2,
        op: '<=',
        unit: ' ms',
      },
      {
        bench: BENCH,
        name: 'hello requests/s (20 connections, a bad app hit too)',
        value: hello.rps,
        limit: 2000,
        op: '>=',
        unit: '',
      },
    ];
    report(targets);
    return targets;
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
