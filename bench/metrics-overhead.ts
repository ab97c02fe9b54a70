/**
 * What metrics cost: one-shot throughput (python print(1) at concurrency 4, warm pools on) of a
 * daemon with metrics on — scraped every second through the API, 15 times as often as a usual
 * Prometheus — against one started with --no-metrics. Both are `realm serve` processes of their
 * own, run in interleaved blocks (on, off, off, on, ...) so that load from elsewhere hits both;
 * each daemon's own CPU per run is read from /proc as well.
 */
import { readFileSync } from 'node:fs';
import { Client, run } from '@realm/sdk';
import { fmt, interleave, pool, progress, progressDone, report, runIfMain, spawnDaemon, type Target } from './lib.js';

const BENCH = 'metrics-overhead';
const WARMUP_RUNS = 50;
const USER_HZ = 100;

/** CPU ms the process used so far (user + system). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / USER_HZ);
}

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
    const subjects = [
      { name: 'on', d: on, client: new Client({ socketPath: on.socket }) },
      { name: 'off', d: off, client: new Client({ socketPath: off.socket }) },
    ];
    const onClient = subjects[0].client;
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
    if (scrapeError) throw scrapeError instanceof Error ? scrapeError : new Error(JSON.stringify(scrapeError));
    const runs = perBlock * blocks;
    const rate = (name: string): number => runs / ((samples.get(name) ?? []).reduce((a, b) => a + b, 0) / 1000);
    const [rOn, rOff] = [rate('on'), rate('off')];
    console.log(
      `metrics on:  ${fmt(rOn, 1)} runs/s, daemon CPU ${fmt((cpu.get('on') ?? 0) / runs)} ms per run (${scrapes} scrapes)`,
    );
    console.log(`metrics off: ${fmt(rOff, 1)} runs/s, daemon CPU ${fmt((cpu.get('off') ?? 0) / runs)} ms per run`);
    console.log(
      `per block (ms): on ${(samples.get('on') ?? []).map((x) => fmt(x, 0)).join(', ')}; off ${(samples.get('off') ?? []).map((x) => fmt(x, 0)).join(', ')}`,
    );
    const overhead = (rOff / rOn - 1) * 100;
    console.log(`ratio on/off: ${fmt((rOn / rOff) * 100, 1)}% (overhead ${fmt(overhead, 1)}%)`);
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
