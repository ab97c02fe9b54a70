/**
 * What tracing costs: one-shot throughput (python print(1) at concurrency 4, warm pools on) of a
 * daemon exporting traces by OTLP (`--otlp-endpoint` to a receiver here on loopback, which takes
 * each batch and answers 200) against one without. Both are `realm serve` processes of their own,
 * run in interleaved blocks (on, off, off, on, ...) so that load from elsewhere hits both; each
 * daemon's own CPU per run is read from /proc as well. No target: the ratio is printed.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client, run } from '@realm/sdk';
import { fmt, interleave, pool, progress, progressDone, runIfMain, spawnDaemon, type Target } from './lib.js';

const BENCH = 'otel-overhead';
const WARMUP_RUNS = 50;
const USER_HZ = 100;

/** CPU ms the process used so far (user + system). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / USER_HZ);
}

/** An OTLP/HTTP sink on loopback: counts the export requests and their bytes, answers 200. */
async function sink(): Promise<{ url: string; requests: () => number; bytes: () => number; close: () => Promise<void> }> {
  let requests = 0;
  let bytes = 0;
  const server = createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests: () => requests,
    bytes: () => bytes,
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      return closed;
    },
  };
}

export async function main(opts: { total?: number; concurrency?: number; blocks?: number } = {}): Promise<Target[]> {
  const total = opts.total ?? 400;
  const concurrency = opts.concurrency ?? 4;
  const blocks = opts.blocks ?? 10;
  const perBlock = Math.ceil(total / blocks);
  console.log(
    `== ${BENCH}: ${total} one-shot python print(1) at concurrency ${concurrency}, traces exported by OTLP vs off; ${blocks} interleaved blocks of ${perBlock}, 2 warm-up rounds of ${WARMUP_RUNS} each`,
  );
  const collector = await sink();
  const on = await spawnDaemon('otel-on', ['--warm', '2', '--uid-range', `${0x70204000}:4096`, '--otlp-endpoint', collector.url]);
  const off = await spawnDaemon('otel-off', ['--warm', '2', '--uid-range', `${0x70205000}:4096`]);
  try {
    const subjects = [
      { name: 'on', d: on, client: new Client({ socketPath: on.socket }) },
      { name: 'off', d: off, client: new Client({ socketPath: off.socket }) },
    ];
    const cpu = new Map<string, number>(subjects.map((s) => [s.name, 0]));
    const samples = await interleave(
      subjects.map(({ name, d, client }) => ({
        name,
        sample: async (round: number) => {
          const c0 = cpuMs(d.child.pid as number);
          const ms = await pool(round < 0 ? WARMUP_RUNS : perBlock, concurrency, async () => {
            const r = await run({ language: 'python', code: 'print(1)' }, client);
            if (r.verdict !== 'ok' || r.stdout !== '1\n') throw new Error(`run failed: ${JSON.stringify(r)}`);
          });
          if (round >= 0) cpu.set(name, (cpu.get(name) ?? 0) + cpuMs(d.child.pid as number) - c0);
          return ms;
        },
      })),
      blocks,
      2,
      (i) => progress(`${BENCH}: block ${i}/${blocks}`),
    ).finally(progressDone);
    const runs = perBlock * blocks;
    const rate = (name: string): number => runs / ((samples.get(name) ?? []).reduce((a, b) => a + b, 0) / 1000);
    const [rOn, rOff] = [rate('on'), rate('off')];
    // Stopping the traced daemon flushes its last batch: the sink has every span by then.
    await on.stop();
    if (collector.requests() === 0) throw new Error('the traced daemon exported nothing: is --otlp-endpoint honoured?');
    console.log(
      `tracing on:  ${fmt(rOn, 1)} runs/s, daemon CPU ${fmt((cpu.get('on') ?? 0) / runs)} ms per run (${collector.requests()} OTLP exports, ${fmt(collector.bytes() / 1024, 0)} KiB)`,
    );
    console.log(`tracing off: ${fmt(rOff, 1)} runs/s, daemon CPU ${fmt((cpu.get('off') ?? 0) / runs)} ms per run`);
    console.log(
      `per block (ms): on ${(samples.get('on') ?? []).map((x) => fmt(x, 0)).join(', ')}; off ${(samples.get('off') ?? []).map((x) => fmt(x, 0)).join(', ')}`,
    );
    console.log(`ratio on/off: ${fmt((rOn / rOff) * 100, 1)}% (overhead ${fmt((rOff / rOn - 1) * 100, 1)}%)`);
    return [];
  } finally {
    await Promise.all([on.stop(), off.stop()]);
    await collector.close();
  }
}

runIfMain(import.meta.url, main);
