/**
 * One-shot python latency: `run({language: 'python', code: 'print(1)'})` through the daemon
 * (SDK over HTTP: create a throwaway sandbox, write main.py, exec, answer) against a bare
 * `/usr/bin/python3 -c 'print(1)'` spawned from node, measured from spawn to exit.
 *
 * Samples are interleaved (daemon, bare, bare, daemon, ...). A run's sandbox is destroyed after
 * the answer; that clean-up is awaited, untimed, before the next sample so it does not land on
 * the baseline (throughput.ts measures back-to-back runs).
 */
import { run } from '@realm/sdk';
import { removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { barePython, fmt, interleave, printLatencies, progress, progressDone, report, runIfMain, summarize, type Target } from './lib.js';

const BENCH = 'run-python';

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 200;
  const warmup = opts.warmup ?? 10;
  console.log(`== ${BENCH}: one-shot python print(1), daemon (SDK run over HTTP) vs bare ${'/usr/bin/python3'} spawn; n=${n} each, interleaved, ${warmup} warm-up rounds`);
  const t = await startTestDaemon();
  try {
    const execWall: number[] = [];
    const samples = await interleave(
      [
        {
          name: 'daemon run',
          sample: async () => {
            const t0 = performance.now();
            const r = await run({ language: 'python', code: 'print(1)' }, t.client);
            const ms = performance.now() - t0;
            if (r.verdict !== 'ok' || r.stdout !== '1\n') throw new Error(`run failed: ${JSON.stringify(r)}`);
            execWall.push(r.wallMs);
            return ms;
          },
          after: () => t.daemon.engine.settled(),
        },
        { name: 'bare python', sample: barePython },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const daemon = summarize(samples.get('daemon run') ?? []);
    const bare = summarize(samples.get('bare python') ?? []);
    const inside = summarize(execWall.slice(-n));
    printLatencies([
      ['daemon run (ms)', daemon],
      ['bare python (ms)', bare],
      ['  exec wallMs reported by daemon', inside],
    ]);
    const ratios = { p50: daemon.p50 / bare.p50, p90: daemon.p90 / bare.p90, p99: daemon.p99 / bare.p99 };
    console.log(`ratio daemon/bare: p50 ${fmt(ratios.p50)}x  p90 ${fmt(ratios.p90)}x  p99 ${fmt(ratios.p99)}x`);
    console.log(`overhead over bare at p50: ${fmt(daemon.p50 - bare.p50)} ms; time outside the exec itself (HTTP, sandbox create, files): ~${fmt(daemon.p50 - inside.p50)} ms`);
    const targets: Target[] = [
      { bench: BENCH, name: 'p50 ratio daemon/bare', value: ratios.p50, limit: 1.6, op: '<=', unit: 'x' },
      { bench: BENCH, name: 'p99 ratio daemon/bare', value: ratios.p99, limit: 3, op: '<=', unit: 'x' },
    ];
    report(targets);
    return targets;
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

runIfMain(import.meta.url, main);
