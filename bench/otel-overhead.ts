/**
 * What tracing costs: one-shot throughput (python print(1) at concurrency 4, warm pools on) of a
 * daemon exporting traces by OTLP (`--otlp-endpoint` to a receiver here on loopback, which takes
 * each batch and answers 200) against one without. Both are `realm serve` processes of their own,
 * run in interleaved blocks (on, off, off, on, ...) so that load from elsewhere hits both; each
 * daemon's own CPU per run is read from /proc as well. No target: the ratio is printed.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fmt, runIfMain, spawnDaemon, type Target } from './lib.js';
import { WARMUP_RUNS, onOffThroughput, printOnOff } from './on-off.js';

const BENCH = 'otel-overhead';

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
    const r = await onOffThroughput(BENCH, { on, off }, { blocks, perBlock, concurrency });
    // Stopping the traced daemon flushes its last batch: the sink has every span by then.
    await on.stop();
    if (collector.requests() === 0) throw new Error('the traced daemon exported nothing: is --otlp-endpoint honoured?');
    printOnOff('tracing', r, ` (${collector.requests()} OTLP exports, ${fmt(collector.bytes() / 1024, 0)} KiB)`);
    return [];
  } finally {
    await Promise.all([on.stop(), off.stop()]);
    await collector.close();
  }
}

runIfMain(import.meta.url, main);
