/**
 * One-shot python latency as a user sees it: a client process of its own posts
 * `{language: 'python', code: 'print(1)'}` to `/v1/runs` on a kept-alive connection to a daemon
 * running in another process (`realm serve`, over its unix socket), against the same
 * `/usr/bin/python3 -c 'print(1)'` started with posix_spawn (the fastest way to start a program:
 * what Python's subprocess and C use; Node's spawn forks and costs a few ms more).
 *
 * The baseline is spawned and timed by a small helper next to this client (python's
 * os.posix_spawn, output drained, waitpid), so no Node event loop sits in it. Two ways:
 *   - spaced: runs ~30 ms apart, interleaved with the baseline (a user's runs, or a judge's);
 *   - back to back: blocks of runs with no gap, against blocks of bare starts with no gap (the
 *     daemon's clean-up of one run competes with the next).
 * The daemon's clean-up is never awaited: the client does not know about it, as users do not.
 *
 * A warm python sandbox starts its interpreter ahead (README: Speed: warm pools); a run given an
 * argument starts it with the run. That way is measured too (spaced, half as many runs), and
 * reported without a target.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { createInterface } from 'node:readline';
import {
  PYTHON,
  fmt,
  postRun,
  printLatencies,
  progress,
  progressDone,
  report,
  runIfMain,
  spawnDaemon,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'run-python';
const GAP_MS = 30;
const BLOCK = 10;

/** Reads a line per sample, posix_spawns python, drains its stdout, waits; prints the ms (-1: wrong output). */
const HELPER = `
import os, sys, time
argv = [sys.argv[1], '-c', 'print(1)']
env = {'PATH': '/usr/bin:/bin'}
for _ in sys.stdin:
    r, w = os.pipe()
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, w, 1), (os.POSIX_SPAWN_CLOSE, r)])
    os.close(w)
    out = b''
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        out += b
    os.close(r)
    _, status = os.waitpid(pid, 0)
    ms = (time.perf_counter_ns() - t0) / 1e6
    print(ms if status == 0 and out == b'1\\n' else -1, flush=True)
`;

/** The posix_spawn baseline: one helper process, a sample per call. */
class BareSpawner {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor() {
    this.child = spawn(PYTHON, ['-c', HELPER, PYTHON], { env: { PATH: '/usr/bin:/bin' }, cwd: '/' });
    this.child.stderr.resume();
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async sample(): Promise<number> {
    this.child.stdin.write('\n');
    const line = await this.lines.next();
    const ms = Number(line.value);
    if (line.done || !(ms >= 0)) throw new Error(`bare python (posix_spawn) failed: ${String(line.value)}`);
    return ms;
  }

  close(): void {
    this.child.stdin.end();
  }
}

/** A client of the daemon's unix socket on one kept-alive connection. */
function runner(socketPath: string, args: string[] = []): () => Promise<{ ms: number; wallMs: number }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return async () => {
    const { ms, status, text } = await postRun(socketPath, agent, '/v1/runs', args);
    const r = JSON.parse(text) as { verdict?: string; stdout?: string; wallMs?: number };
    if (status !== 200 || r.verdict !== 'ok' || r.stdout !== '1\n') throw new Error(`run failed: ${status} ${text}`);
    return { ms, wallMs: r.wallMs ?? NaN };
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Spaced: run, gap, bare, gap; the first of a round alternates so neither always follows a gap of the other. */
async function spacedSeries(
  run: () => Promise<{ ms: number; wallMs: number }>,
  bare: BareSpawner,
  n: number,
  label: string,
): Promise<{ run: number[]; bare: number[]; wall: number[] }> {
  const out = { run: [] as number[], bare: [] as number[], wall: [] as number[] };
  for (let i = 0; i < n; i++) {
    for (const o of i % 2 ? ['bare', 'run'] : ['run', 'bare']) {
      if (o === 'run') {
        const r = await run();
        out.run.push(r.ms);
        out.wall.push(r.wallMs);
      } else out.bare.push(await bare.sample());
      await sleep(GAP_MS);
    }
    progress(`${label}: ${i + 1}/${n}`);
  }
  return out;
}

export async function main(opts: { n?: number; warmup?: number; cold?: boolean } = {}): Promise<Target[]> {
  const n = opts.n ?? 200;
  const warmup = opts.warmup ?? 10;
  const cold = opts.cold ?? process.argv.includes('--cold');
  const name = cold ? `${BENCH} cold` : BENCH;
  console.log(
    `== ${name}${cold ? ' (warm pools off)' : ''}: one-shot python print(1) posted to /v1/runs by a client process (kept-alive connection, unix socket) to a daemon in its own process, vs bare ${PYTHON} by posix_spawn; n=${n} each way, ${warmup} warm-up rounds`,
  );
  const d = await spawnDaemon(cold ? 'run-python-cold' : 'run-python', cold ? ['--warm', '0'] : []);
  const bare = new BareSpawner();
  try {
    const run = runner(d.socket);
    for (let i = 0; i < warmup; i++) {
      await run();
      await bare.sample();
      await sleep(GAP_MS);
    }
    const spaced = await spacedSeries(run, bare, n, `${name} spaced`);
    // Back to back: blocks of BLOCK with no gap, alternating, so noise falls on both alike.
    const b2b = { run: [] as number[], bare: [] as number[] };
    for (let i = 0; i < n; i += BLOCK) {
      const k = Math.min(BLOCK, n - i);
      for (let j = 0; j < k; j++) b2b.run.push((await run()).ms);
      for (let j = 0; j < k; j++) b2b.bare.push(await bare.sample());
      progress(`${name} back to back: ${i + k}/${n}`);
    }
    // Spaced again, the interpreter started with the run (an argument given).
    const late = await spacedSeries(runner(d.socket, ['-']), bare, Math.ceil(n / 2), `${name} started with the run`);
    progressDone();
    const s = { run: summarize(spaced.run), bare: summarize(spaced.bare), wall: summarize(spaced.wall) };
    const l = { run: summarize(late.run), bare: summarize(late.bare) };
    const b = { run: summarize(b2b.run), bare: summarize(b2b.bare) };
    printLatencies([
      [`spaced ${GAP_MS} ms: daemon run (ms)`, s.run],
      [`spaced ${GAP_MS} ms: bare python (ms)`, s.bare],
      ['  exec wallMs reported by the daemon', s.wall],
      ['back to back: daemon run (ms)', b.run],
      ['back to back: bare python (ms)', b.bare],
      [`spaced, python started with the run (args): daemon run (ms)`, l.run],
      [`spaced, python started with the run (args): bare (ms)`, l.bare],
    ]);
    const ratio = {
      spaced50: s.run.p50 / s.bare.p50,
      spaced90: s.run.p90 / s.bare.p90,
      b2b50: b.run.p50 / b.bare.p50,
      b2b90: b.run.p90 / b.bare.p90,
    };
    console.log(
      `ratio daemon/bare: spaced p50 ${fmt(ratio.spaced50)}x p90 ${fmt(ratio.spaced90)}x; back to back p50 ${fmt(ratio.b2b50)}x p90 ${fmt(ratio.b2b90)}x`,
    );
    console.log(
      `spaced, at p50: ${fmt(s.run.p50 - s.bare.p50)} ms over bare; ~${fmt(s.run.p50 - s.wall.p50)} ms of it outside the exec itself (HTTP, sandbox, files)`,
    );
    console.log(
      `python started with the run (an argument given), spaced: p50 ${fmt(l.run.p50 / l.bare.p50)}x, p90 ${fmt(l.run.p90 / l.bare.p90)}x`,
    );
    // Issue 14's targets as users see it: spaced p50 ≤ 1.25×, back to back p50 ≤ 1.35×.
    const targets: Target[] = [
      { bench: name, name: 'spaced p50 ratio daemon/bare', value: ratio.spaced50, limit: 1.25, op: '<=', unit: 'x' },
      { bench: name, name: 'back-to-back p50 ratio daemon/bare', value: ratio.b2b50, limit: 1.35, op: '<=', unit: 'x' },
    ];
    report(targets);
    return targets;
  } finally {
    bare.close();
    await d.stop();
  }
}

runIfMain(import.meta.url, main);
