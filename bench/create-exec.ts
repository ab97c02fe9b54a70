/**
 * Sandbox start latency: `Sandbox.create()` then the first `exec(['true'])` finished, timed on
 * the client (SDK over HTTP) from before create to the exec's result. The destroy comes after
 * the clock stops. Baseline, interleaved: a bare spawn of `/usr/bin/true` from node.
 */
import { Sandbox } from '@realm/sdk';
import {
  fmt,
  interleave,
  printLatencies,
  progress,
  progressDone,
  measureWithDaemon,
  runIfMain,
  spawnTimed,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'create-exec';

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 100;
  const warmup = opts.warmup ?? 10;
  console.log(
    `== ${BENCH}: Sandbox.create + first exec(['true']) via SDK vs bare spawn of /usr/bin/true; n=${n} each, interleaved, ${warmup} warm-up rounds`,
  );
  return measureWithDaemon({}, async (t) => {
    const createMs: number[] = [];
    const execMs: number[] = [];
    let sb: Sandbox | undefined;
    const samples = await interleave(
      [
        {
          name: 'create+exec',
          sample: async () => {
            const t0 = performance.now();
            sb = await Sandbox.create({}, t.client);
            const t1 = performance.now();
            const r = await sb.exec(['true']);
            const t2 = performance.now();
            if (r.exitCode !== 0) throw new Error(`exec true failed: ${JSON.stringify(r)}`);
            createMs.push(t1 - t0);
            execMs.push(t2 - t1);
            return t2 - t0;
          },
          after: async () => {
            await sb?.destroy();
            sb = undefined;
          },
        },
        {
          name: 'bare true',
          sample: async () => {
            const r = await spawnTimed('/usr/bin/true', []);
            if (r.code !== 0) throw new Error(`/usr/bin/true exited ${r.code}`);
            return r.ms;
          },
        },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const total = summarize(samples.get('create+exec') ?? []);
    const bare = summarize(samples.get('bare true') ?? []);
    printLatencies([
      ['create+exec (ms)', total],
      ['  create (ms)', summarize(createMs.slice(-n))],
      ['  first exec (ms)', summarize(execMs.slice(-n))],
      ['bare /usr/bin/true (ms)', bare],
    ]);
    console.log(
      `ratio (create+exec)/bare: p50 ${fmt(total.p50 / bare.p50)}x  p90 ${fmt(total.p90 / bare.p90)}x  p99 ${fmt(total.p99 / bare.p99)}x`,
    );
    const targets: Target[] = [
      { bench: BENCH, name: 'p50 create+first exec', value: total.p50, limit: 15, op: '<=', unit: ' ms' },
    ];
    return targets;
  });
}

runIfMain(import.meta.url, main);
