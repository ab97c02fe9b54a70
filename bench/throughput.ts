/**
 * One-shot throughput: 200 python print(1) runs at concurrency 4 through the daemon (SDK `run`
 * over HTTP) against 200 bare `/usr/bin/python3 -c 'print(1)'` spawns at concurrency 4.
 *
 * Interleaved in blocks (daemon, bare, bare, daemon, ...) so drift hits both. A daemon block
 * ends when its last sandbox is cleaned up, not at its last answer: clean-up is work the host
 * does for each run, and leaving it to overlap the next (bare) block would flatter the daemon.
 */
import { run } from '@realm/sdk';
import { removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { barePython, fmt, interleave, pool, progress, progressDone, report, runIfMain, type Target } from './lib.js';

const BENCH = 'throughput';

export async function main(opts: { total?: number; concurrency?: number; blocks?: number } = {}): Promise<Target[]> {
  const total = opts.total ?? 200;
  const concurrency = opts.concurrency ?? 4;
  const blocks = opts.blocks ?? 4;
  const perBlock = Math.ceil(total / blocks);
  console.log(`== ${BENCH}: ${total} one-shot python print(1) at concurrency ${concurrency}, daemon vs bare /usr/bin/python3; ${blocks} interleaved blocks of ${perBlock}, 1 warm-up block of ${concurrency * 2}`);
  const t = await startTestDaemon();
  try {
    const engine = t.daemon.engine;
    let answeredMs = 0;
    const daemonRun = async (): Promise<void> => {
      const r = await run({ language: 'python', code: 'print(1)' }, t.client);
      if (r.verdict !== 'ok' || r.stdout !== '1\n') throw new Error(`run failed: ${JSON.stringify(r)}`);
    };
    const bareRun = async (): Promise<void> => {
      await barePython();
    };
    const samples = await interleave(
      [
        {
          name: 'daemon',
          sample: async (round) => {
            const t0 = performance.now();
            await pool(round < 0 ? concurrency * 2 : perBlock, concurrency, daemonRun);
            if (round >= 0) answeredMs += performance.now() - t0;
            await engine.settled();
            return performance.now() - t0;
          },
        },
        { name: 'bare', sample: (round) => pool(round < 0 ? concurrency * 2 : perBlock, concurrency, bareRun) },
      ],
      blocks,
      1,
      (i) => {
        progress(`${BENCH}: block ${i}/${blocks}`);
      },
    ).finally(progressDone);
    const sum = (xs: number[] | undefined): number => (xs ?? []).reduce((a, b) => a + b, 0);
    const runs = perBlock * blocks;
    const daemonRate = runs / (sum(samples.get('daemon')) / 1000);
    const bareRate = runs / (sum(samples.get('bare')) / 1000);
    const answeredRate = runs / (answeredMs / 1000);
    console.log(`daemon: ${fmt(daemonRate, 1)} runs/s (${fmt(answeredRate, 1)} runs/s counting only until the last answer, clean-up excluded)`);
    console.log(`bare:   ${fmt(bareRate, 1)} runs/s`);
    console.log(`per block (ms): daemon ${(samples.get('daemon') ?? []).map((x) => fmt(x, 0)).join(', ')}; bare ${(samples.get('bare') ?? []).map((x) => fmt(x, 0)).join(', ')}`);
    const ratio = (daemonRate / bareRate) * 100;
    console.log(`ratio daemon/bare: ${fmt(ratio, 1)}%`);
    const targets: Target[] = [{ bench: BENCH, name: 'throughput daemon/bare', value: ratio, limit: 70, op: '>=', unit: '%' }];
    report(targets);
    return targets;
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

runIfMain(import.meta.url, main);
