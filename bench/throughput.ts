/**
 * One-shot throughput: 200 python print(1) runs at concurrency 4 through the daemon (SDK `run`
 * over HTTP) against 200 bare `/usr/bin/python3 -c 'print(1)'` spawns at concurrency 4.
 *
 * Interleaved in blocks (daemon, bare, bare, daemon, ...) so that bursts of load from elsewhere
 * hit both. A daemon block is timed until its last answer; the clean-up of its last runs (a
 * sandbox is destroyed after its answer) is then awaited untimed so it does not land on the
 * next bare block. Inside a block clean-ups overlap later runs, as they do in steady state.
 * The rate including each block's clean-up tail is printed too.
 *
 * Both sides first warm up with two rounds of WARMUP_RUNS runs each: the daemon is a long-lived
 * process, and until V8 has optimized its request path (a few hundred requests) every run costs
 * it about 1 ms of CPU more — 8 warm-up runs measured a freshly started daemon's JIT as much as
 * the daemon. The figure printed is the steady state.
 */
import { availableParallelism } from 'node:os';
import { run } from '@realm/sdk';
import {
  addCpu,
  barePython,
  cpuSince,
  cpuSnapshot,
  fmt,
  interleave,
  pool,
  progress,
  progressDone,
  measureWithDaemon,
  runIfMain,
  type CpuUse,
  type Target,
} from './lib.js';

const BENCH = 'throughput';
/** Runs per warm-up round (two rounds per side). */
const WARMUP_RUNS = 50;

export async function main(opts: { total?: number; concurrency?: number; blocks?: number } = {}): Promise<Target[]> {
  const total = opts.total ?? 200;
  const concurrency = opts.concurrency ?? 4;
  const blocks = opts.blocks ?? 10;
  const perBlock = Math.ceil(total / blocks);
  console.log(
    `== ${BENCH}: ${total} one-shot python print(1) at concurrency ${concurrency}, daemon vs bare /usr/bin/python3; ${blocks} interleaved blocks of ${perBlock}, 2 warm-up rounds of ${WARMUP_RUNS} each`,
  );
  return measureWithDaemon({}, async (t) => {
    const engine = t.daemon.engine;
    let withCleanupMs = 0;
    const zero: CpuUse = { selfMs: 0, childrenMs: 0, hostBusyMs: 0, eventLoop: 0 };
    const cpu = { daemon: zero, bare: zero };
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
            const c0 = cpuSnapshot();
            const t0 = performance.now();
            await pool(round < 0 ? WARMUP_RUNS : perBlock, concurrency, daemonRun);
            const ms = performance.now() - t0;
            await engine.settled();
            if (round >= 0) {
              withCleanupMs += performance.now() - t0;
              cpu.daemon = addCpu(cpu.daemon, cpuSince(c0));
            }
            return ms;
          },
        },
        {
          name: 'bare',
          sample: async (round) => {
            const c0 = cpuSnapshot();
            const ms = await pool(round < 0 ? WARMUP_RUNS : perBlock, concurrency, bareRun);
            if (round >= 0) cpu.bare = addCpu(cpu.bare, cpuSince(c0));
            return ms;
          },
        },
      ],
      blocks,
      2,
      (i) => {
        progress(`${BENCH}: block ${i}/${blocks}`);
      },
    ).finally(progressDone);
    const sum = (xs: number[] | undefined): number => (xs ?? []).reduce((a, b) => a + b, 0);
    const runs = perBlock * blocks;
    const daemonRate = runs / (sum(samples.get('daemon')) / 1000);
    const bareRate = runs / (sum(samples.get('bare')) / 1000);
    const withCleanupRate = runs / (withCleanupMs / 1000);
    console.log(
      `daemon: ${fmt(daemonRate, 1)} runs/s (${fmt(withCleanupRate, 1)} runs/s counting each block until its last sandbox is cleaned up)`,
    );
    console.log(`bare:   ${fmt(bareRate, 1)} runs/s`);
    console.log(
      `per block (ms): daemon ${(samples.get('daemon') ?? []).map((x) => fmt(x, 0)).join(', ')}; bare ${(samples.get('bare') ?? []).map((x) => fmt(x, 0)).join(', ')}`,
    );
    const perRun = (c: CpuUse): string =>
      `node process ${fmt(c.selfMs / runs)}  children ${fmt(c.childrenMs / runs)}  whole host ${fmt(c.hostBusyMs / runs)}`;
    console.log(
      `CPU ms per run: daemon: ${perRun(cpu.daemon)}; event loop busy ${fmt((cpu.daemon.eventLoop / blocks) * 100, 0)}%`,
    );
    console.log(`                bare:   ${perRun(cpu.bare)}; event loop busy ${fmt((cpu.bare.eventLoop / blocks) * 100, 0)}%`);
    console.log(
      `(the daemon runs in this node process; "children" is CPU of reaped helpers, bwrap+init and python; the host has ${availableParallelism()} CPUs)`,
    );
    const ratio = (daemonRate / bareRate) * 100;
    console.log(`ratio daemon/bare: ${fmt(ratio, 1)}%`);
    const targets: Target[] = [{ bench: BENCH, name: 'throughput daemon/bare', value: ratio, limit: 70, op: '>=', unit: '%' }];
    return targets;
  });
}

runIfMain(import.meta.url, main);
