/**
 * gVisor against the namespace driver, in the same run and the same daemon:
 *   1. start latency: `Sandbox.create()` then the first `exec(['true'])`, timed on the client,
 *      interleaved gvisor / namespace — with warm pools (the default) and cold (pools off);
 *   2. syscall-heavy work: one python loop of stat/open/close calls in a running sandbox of each
 *      driver, timed on the client; the ratio gvisor/namespace is gVisor's syscall overhead.
 */
import { Sandbox } from '@realm/sdk';
import { gvisorSkipReason, removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import {
  createExecSubject,
  fmt,
  interleave,
  printLatencies,
  progress,
  progressDone,
  measureWithDaemon,
  runIfMain,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'gvisor-start';

/** ~20k stat + 10k open/close of files in the home directory and /usr. */
const SYSCALLS = [
  'import os, time',
  'for i in range(50): open(f"f{i}", "w").close()',
  't = time.perf_counter()',
  'for _ in range(200):',
  '    for i in range(50):',
  '        os.stat(f"f{i}"); os.stat("/usr/bin/python3")',
  '        open(f"f{i}").close()',
  'print(round((time.perf_counter() - t) * 1000, 1))',
].join('\n');

export async function main(opts: { n?: number; warmup?: number; heavy?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 20;
  const warmup = opts.warmup ?? 3;
  const heavy = opts.heavy ?? 5;
  const skip = await gvisorSkipReason();
  if (skip) {
    console.log(`== ${BENCH}: skipped: ${skip}`);
    return [];
  }
  // Warm pools on (the daemon's default): a create takes a sandbox built ahead, the pool refills.
  const warm = await startTestDaemon({ warm: 2 });
  let warmGv: ReturnType<typeof summarize>;
  try {
    console.log(
      `== ${BENCH}: Sandbox.create + first exec(['true']) with warm pools (default), gvisor vs namespace; n=${n} each, interleaved, ${warmup} warm-up rounds`,
    );
    const ws = await interleave([createExecSubject(warm, 'gvisor'), createExecSubject(warm, 'namespace')], n, warmup, (i) =>
      progress(`${BENCH} warm: ${i}/${n}`),
    );
    progressDone();
    warmGv = summarize(ws.get('gvisor') ?? []);
    const warmNs = summarize(ws.get('namespace') ?? []);
    printLatencies([
      ['gvisor create+exec, warm (ms)', warmGv],
      ['namespace create+exec, warm (ms)', warmNs],
    ]);
    console.log(`ratio gvisor/namespace start, warm: p50 ${fmt(warmGv.p50 / warmNs.p50)}x  p90 ${fmt(warmGv.p90 / warmNs.p90)}x`);
  } finally {
    await warm.close();
    removeTestDirs(warm);
  }
  console.log(
    `== ${BENCH}: cold Sandbox.create + first exec(['true']) (warm pools off), gvisor vs namespace; n=${n} each, interleaved, ${warmup} warm-up rounds`,
  );
  return measureWithDaemon({ warm: 0 }, async (t) => {
    const subject = (driver: 'gvisor' | 'namespace') => createExecSubject(t, driver);
    const samples = await interleave([subject('gvisor'), subject('namespace')], n, warmup, (i) =>
      progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const gv = summarize(samples.get('gvisor') ?? []);
    const ns = summarize(samples.get('namespace') ?? []);
    printLatencies([
      ['gvisor create+exec, cold (ms)', gv],
      ['namespace create+exec, cold (ms)', ns],
    ]);
    console.log(`ratio gvisor/namespace start, cold: p50 ${fmt(gv.p50 / ns.p50)}x  p90 ${fmt(gv.p90 / ns.p90)}x`);

    console.log(`== ${BENCH}: syscall-heavy python (20k stat + 10k open/close), ${heavy} runs per driver, interleaved`);
    const boxes = {
      gvisor: await Sandbox.create({ driver: 'gvisor' }, t.client),
      namespace: await Sandbox.create({ driver: 'namespace' }, t.client),
    };
    try {
      const inner = { gvisor: [] as number[], namespace: [] as number[] };
      const heavySubject = (driver: 'gvisor' | 'namespace') => ({
        name: driver,
        sample: async () => {
          const t0 = performance.now();
          const r = await boxes[driver].exec(['/usr/bin/python3', '-c', SYSCALLS], { timeout: '120s' });
          const ms = performance.now() - t0;
          if (r.exitCode !== 0) throw new Error(`${driver}: ${r.stderr}`);
          inner[driver].push(Number(r.stdout.trim()));
          return ms;
        },
      });
      const hs = await interleave([heavySubject('gvisor'), heavySubject('namespace')], heavy, 1);
      const hg = summarize(hs.get('gvisor') ?? []);
      const hn = summarize(hs.get('namespace') ?? []);
      const ig = summarize(inner.gvisor.slice(-heavy));
      const inn = summarize(inner.namespace.slice(-heavy));
      printLatencies([
        ['gvisor exec total (ms)', hg],
        ['namespace exec total (ms)', hn],
        ['gvisor syscall loop (ms)', ig],
        ['namespace syscall loop (ms)', inn],
      ]);
      console.log(
        `slowdown gvisor/namespace: syscall loop p50 ${fmt(ig.p50 / inn.p50)}x, whole exec p50 ${fmt(hg.p50 / hn.p50)}x`,
      );
    } finally {
      await boxes.gvisor.destroy();
      await boxes.namespace.destroy();
    }
    const targets: Target[] = [
      { bench: BENCH, name: 'p50 gvisor create+first exec, warm pools', value: warmGv.p50, limit: 250, op: '<=', unit: ' ms' },
      { bench: BENCH, name: 'p50 gvisor create+first exec, cold', value: gv.p50, limit: 250, op: '<=', unit: ' ms' },
    ];
    return targets;
  });
}

runIfMain(import.meta.url, main);
