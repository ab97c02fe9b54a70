/**
 * The app gateway under load: a C hello compiled to wasm (`clang --target=wasm32-wasi`), pushed
 * as app `hello` to a daemon in its own process (`realm serve --gateway 127.0.0.1:0`), then hit by
 * autocannon (a process of its own, 20 connections) while a misbehaving app (`bad`: a loop stopped
 * by its 100 ms deadline) is hit at the same time by 2 more connections. Issue 15's targets: a warm
 * request p50 ≤ 2 ms and ≥ 2,000 requests/s.
 */
import { execFileSync, spawn } from 'node:child_process';
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

export async function main(opts: { seconds?: number } = {}): Promise<Target[]> {
  const seconds = opts.seconds ?? 10;
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
    await apps.push({ name: 'hello', module }, client);
    await apps.push({ name: 'bad', module, timeout: '100ms' }, client);
    const gw = d.gateway ?? '';
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`${gw}/hello/`);
      if (r.status !== 200 || (await r.text()) !== 'hello\n') throw new Error(`warm-up: ${r.status}`);
    }
    const alone = await load(`${gw}/hello/`, 20, seconds);
    console.log(
      `hello alone: ${fmt(alone.rps, 0)} req/s  p50 ${alone.p50} ms  p99 ${alone.p99} ms  2xx ${alone.ok}  non-2xx ${alone.non2xx}  errors ${alone.errors}`,
    );
    const [hello, bad] = await Promise.all([load(`${gw}/hello/`, 20, seconds), load(`${gw}/bad/loop`, 2, seconds)]);
    console.log(
      `hello with bad hit too: ${fmt(hello.rps, 0)} req/s  p50 ${hello.p50} ms  p99 ${hello.p99} ms  2xx ${hello.ok}  non-2xx ${hello.non2xx}  errors ${hello.errors}`,
    );
    console.log(
      `bad (loop, 100 ms deadline): ${fmt(bad.rps, 1)} req/s  p50 ${bad.p50} ms  non-2xx ${bad.non2xx} (504 expected)  errors ${bad.errors}`,
    );
    const after = await fetch(`${gw}/hello/`);
    console.log(`after the load: hello answers ${after.status}`);
    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'warm hello request p50 (20 connections, a bad app hit too)',
        value: hello.p50,
        limit: 2,
        op: '<=',
        unit: ' ms',
      },
      { bench: BENCH, name: 'hello requests/s', value: hello.rps, limit: 2000, op: '>=', unit: '' },
    ];
    report(targets);
    return targets;
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
