/**
 * What metrics cost: one-shot throughput (python print(1) at concurrency 4, warm pools on) of a
 * daemon with metrics on — scraped every second through the API, 15 times as often as a usual
 * Prometheus — against one started with --no-metrics. Both are `realm serve` processes of their
 * own, run in interleaved blocks (on, off, off, on, ...) so that load from elsewhere hits both;
 * each daemon's own CPU per run is read from /proc as well.
 */
import { Client } from '@realm/sdk';
import { report, runIfMain, spawnDaemon, type Target } from './lib.js';
import { WARMUP_RUNS, onOffThroughput, printOnOff } from './on-off.js';

const BENCH = 'metrics-overhead';

export async function main(opts: { total?: number; concurrency?: number; blocks?: number } = {}): Promise<Target[]> {
  const total = opts.total ?? 400;
  const concurrency = opts.concurrency ?? 4;
  const blocks = opts.blocks ?? 10;
  const perBlock = Math.ceil(total / blocks);
  console.log(
    `== ${BENCH}: ${total} one-shot python print(1) at concurrency ${concurrency}, metrics on (scraped every 1 s) vs --no-metrics; ${blocks} interleaved blocks of ${perBlock}, 2 warm-up rounds of ${WARMUP_RUNS} each`,
  );
  const on = await spawnDaemon('metrics-on', ['--warm', '2', '--uid-range', `${0x70200000}:4096`]);
  const off = await spawnDaemon('metrics-off', ['--warm', '2', '--uid-range', `${0x70201000}:4096`, '--no-metrics']);
  let scraping = true;
  let scrapes = 0;
  let scraper: Promise<void> = Promise.resolve();
  let scrapeError: unknown;
  try {
    const onClient = new Client({ socketPath: on.socket });
    scraper = (async () => {
      while (scraping) {
        const text = await onClient.metrics.text();
        if (!text.includes('realm_runs_total')) throw new Error('the scrape has no realm_runs_total');
        scrapes++;
        await new Promise((r) => setTimeout(r, 1000));
      }
    })().catch((e: unknown) => {
      scrapeError = e;
    });
    const r = await onOffThroughput(BENCH, { on, off }, { blocks, perBlock, concurrency });
    if (scrapeError) throw scrapeError instanceof Error ? scrapeError : new Error(JSON.stringify(scrapeError));
    printOnOff('metrics', r, ` (${scrapes} scrapes)`);
    const overhead = r.overheadPct;
    const targets: Target[] = [
      { bench: BENCH, name: 'throughput overhead of metrics', value: overhead, limit: 3, op: '<=', unit: '%' },
    ];
    report(targets);
    return targets;
  } finally {
    scraping = false;
    await scraper;
    await Promise.all([on.stop(), off.stop()]);
  }
}

runIfMain(import.meta.url, main);
