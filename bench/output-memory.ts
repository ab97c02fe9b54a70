/**
 * The daemon's memory under program output, and its answers while a client does not read.
 *
 *   - RSS of the daemon (its own process; this one is the client) before, at the peak (VmHWM,
 *     reset through clear_refs), and after, while 4 execs print output one byte per write, and
 *     again with 64 KiB writes: MB of RSS per MB of output, and the ratio of the two (tiny writes
 *     must cost about what large ones do);
 *   - /v1/health latency p50/p99 while a background process floods 1 GB to an SSE client that
 *     never reads, against idle: ratios.
 *
 * Targets sit between what main did before the fix (1-byte writes 15-27 MB of RSS per MB, 3.7-5.5x
 * the 64 KiB cost, RSS 2-2.8x after; +1 GB and health p50 18x under the deaf-client flood) and
 * what it does now (1.8-4 MB per MB, 0.4-0.9x, 1.1-1.3x after; +5-55 MB, p50 1-4.4x).
 *
 * `node dist/bench/output-memory.js`
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Client, Sandbox } from '@realm/sdk';
import { removeTestDirs } from '../test/helpers/daemon.js';
import { MiB, PYTHON, fmt, printLatencies, procStatus, report, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'output-memory';
/** Output of each of the 4 execs. */
const BYTES = 2_000_000;

/** A Python program printing `bytes` in writes of `size`. */
function printer(bytes: number, size: number): string {
  return `import os
b = b'x' * ${size}
w = os.write
for _ in range(${Math.ceil(bytes / size)}):
    w(1, b)
`;
}

interface Child {
  pid: number;
  url: string;
  close: () => Promise<void>;
}

/** The daemon in a child process (the test suites' child daemon), so its RSS is its own. */
async function startChild(): Promise<Child> {
  const script = fileURLToPath(new URL('../test/hostile/fd-daemon.js', import.meta.url));
  const child = spawn(process.execPath, [script], { stdio: ['pipe', 'pipe', 'inherit'] });
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const info = JSON.parse(line) as { url: string; dataDir: string; cgroupRoot: string };
  return {
    pid: child.pid!,
    url: info.url,
    close: async () => {
      child.stdin.end();
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
      removeTestDirs(info);
    },
  };
}

interface MemoryFigures {
  before: number;
  peak: number;
  after: number;
  /** MB of RSS growth at the peak per MB of output. */
  perMb: number;
  wallMs: number;
}

/** 4 execs at once, each printing BYTES in writes of `size`. */
async function outputRound(d: Child, sb: Sandbox, size: number): Promise<MemoryFigures> {
  writeFileSync(`/proc/${d.pid}/clear_refs`, '5'); // VmHWM restarts from the present RSS
  const before = procStatus(d.pid, 'VmRSS');
  const t0 = performance.now();
  const results = await Promise.all([0, 1, 2, 3].map(() => sb.exec([PYTHON, '-c', printer(BYTES, size)], { timeout: '20m' })));
  const wallMs = performance.now() - t0;
  for (const r of results)
    if (r.stdout.length < BYTES) throw new Error(`an exec printed ${r.stdout.length} bytes (${r.verdict})`);
  const peak = procStatus(d.pid, 'VmHWM');
  await sleep(2000); // the memory given back, as far as the allocator returns it
  const after = procStatus(d.pid, 'VmRSS');
  return { before, peak, after, perMb: (peak - before) / (4 * BYTES), wallMs };
}

async function healthLatencies(url: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const res = await fetch(`${url}/v1/health`);
    await res.arrayBuffer();
    out.push(performance.now() - t0);
    await sleep(20);
  }
  return out;
}

/** A client that asks for an SSE stream and never reads it. */
async function deafClient(url: string, path: string): Promise<Socket> {
  const u = new URL(url);
  const sock = connect(Number(u.port), u.hostname);
  await once(sock, 'connect');
  sock.pause();
  sock.write(`GET ${path} HTTP/1.1\r\nHost: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`);
  return sock;
}

/** One round in a daemon of its own (so no round reuses memory another one's output freed). */
async function freshRound(size: number): Promise<MemoryFigures> {
  const d = await startChild();
  try {
    const sb = await Sandbox.create({ memory: '256m', cpus: 2 }, new Client({ url: d.url }));
    await sb.exec([PYTHON, '-c', printer(64 * 1024, 1024)]); // the first exec's own costs are not the round's
    return await outputRound(d, sb, size);
  } finally {
    await d.close();
  }
}

export async function main(): Promise<Target[]> {
  console.log(
    `== ${BENCH}: daemon RSS per MB of output (4 execs × ${fmt(BYTES / 1e6, 1)} MB), health latency under a flood with a client that does not read`,
  );
  const big = await freshRound(64 * 1024);
  const tiny = await freshRound(1);
  for (const [name, m] of [
    ['64 KiB writes', big],
    ['1-byte writes', tiny],
  ] as const) {
    console.log(
      `${name.padEnd(14)} RSS ${fmt(m.before / MiB, 1)} → peak ${fmt(m.peak / MiB, 1)} → after ${fmt(m.after / MiB, 1)} MiB; ${fmt(m.perMb, 3)} MB of RSS per MB of output; ${fmt(m.wallMs / 1000, 1)} s`,
    );
  }
  const d = await startChild();
  const client = new Client({ url: d.url });
  const sb = await Sandbox.create({ memory: '256m', cpus: 2 }, client);
  try {
    await sb.exec(['/bin/true']);
    const idle = await healthLatencies(d.url, 100);
    // A background process floods 1 GB in 64 KiB writes; its follower never reads.
    const proc = await sb.processes.start([PYTHON, '-c', `${printer(1_000_000_000, 64 * 1024)}import time\ntime.sleep(600)\n`]);
    const deaf = await deafClient(d.url, `/v1/sandboxes/${sb.id}/processes/${proc.id}/output`);
    writeFileSync(`/proc/${d.pid}/clear_refs`, '5');
    const floodBefore = procStatus(d.pid, 'VmRSS');
    await sleep(1000);
    const flooded = await healthLatencies(d.url, 100);
    const floodPeak = procStatus(d.pid, 'VmHWM');
    deaf.destroy();
    await proc.kill();
    const [si, sf] = [summarize(idle), summarize(flooded)];
    printLatencies([
      ['health idle', si],
      ['health flood', sf],
    ]);
    console.log(`RSS during the flood: ${fmt(floodBefore / MiB, 1)} → peak ${fmt(floodPeak / MiB, 1)} MiB`);

    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'RSS per MB of output, 1-byte / 64 KiB writes',
        value: tiny.perMb / Math.max(big.perMb, 0.01),
        limit: 2,
        op: '<=',
        unit: 'x',
      },
      { bench: BENCH, name: 'RSS per MB of output, 1-byte writes', value: tiny.perMb, limit: 8, op: '<=', unit: '' },
      {
        bench: BENCH,
        name: 'RSS after / before, 1-byte writes',
        value: tiny.after / tiny.before,
        limit: 1.5,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'health p50, flood with a deaf SSE client / idle',
        value: sf.p50 / si.p50,
        limit: 10,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'health p99, flood with a deaf SSE client / idle',
        value: sf.p99 / si.p99,
        limit: 20,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'RSS growth during the flood',
        value: (floodPeak - floodBefore) / MiB,
        limit: 150,
        op: '<=',
        unit: ' MiB',
      },
    ];
    report(targets);
    return targets;
  } finally {
    await sb.destroy().catch(() => undefined);
    await d.close();
  }
}

runIfMain(import.meta.url, main);
