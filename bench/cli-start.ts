/**
 * CLI start-up as a user feels it: `realm --version`, and `realm run python -c 'print(1)'`
 * against a daemon already running in a process of its own (over its unix socket, the CLI's
 * default), each spawned as a shell would, against
 * `node -e 0` spawned the same way in the same run (the floor of any Node CLI on this machine).
 * Interleaved samples; targets from issue 14: --version p50 ≤ 1.5×, run p50 ≤ 2.5× node -e 0.
 */
import { spawn } from 'node:child_process';
import { Agent } from 'node:http';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import {
  fmt,
  interleave,
  postRun,
  printLatencies,
  progress,
  progressDone,
  runIfMain,
  spawnDaemon,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'cli-start';
const NODE = process.execPath;
const MAIN = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');

/** Spawn, wait for exit with output drained; the time from spawn to close, in ms. */
function timed(file: string, args: string[], env: Record<string, string>, want?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      const ms = performance.now() - t0;
      if (code !== 0 || (want !== undefined && out !== want))
        reject(new Error(`${file} ${args.join(' ')}: exit ${code}: ${out}${err}`));
      else resolve(ms);
    });
  });
}

/** The same run asked of the daemon by this process on a kept-alive connection: what the API alone takes. */
async function apiRun(socketPath: string, agent: Agent): Promise<number> {
  const r = await postRun(socketPath, agent, '/v1/runs/stream');
  if (r.status !== 200 || !r.text.includes('event: exit')) throw new Error(`run failed: ${r.status} ${r.text}`);
  return r.ms;
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 40;
  const warmup = opts.warmup ?? 3;
  console.log(
    `== ${BENCH}: realm --version and realm run python -c 'print(1)' (daemon in its own process) vs node -e 0; n=${n} each, interleaved, ${warmup} warm-up rounds`,
  );
  const d = await spawnDaemon(BENCH);
  const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', REALM_SOCKET: d.socket };
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const samples = await interleave(
      [
        { name: 'node -e 0', sample: () => timed(NODE, ['-e', '0'], env) },
        { name: 'realm --version', sample: () => timed(NODE, [MAIN, '--version'], env) },
        { name: 'realm run', sample: () => timed(NODE, [MAIN, 'run', 'python', '-c', 'print(1)'], env, '1\n') },
        { name: 'api', sample: () => apiRun(d.socket, agent) },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const floor = summarize(samples.get('node -e 0') ?? []);
    const version = summarize(samples.get('realm --version') ?? []);
    const run = summarize(samples.get('realm run') ?? []);
    const api = summarize(samples.get('api') ?? []);
    printLatencies([
      ['node -e 0 (ms)', floor],
      ['realm --version (ms)', version],
      ["realm run python -c 'print(1)' (ms)", run],
      ['  the same run, API alone (kept-alive, in-process)', api],
    ]);
    const rv = version.p50 / floor.p50;
    const rr = run.p50 / floor.p50;
    console.log(`ratio to node -e 0 at p50: --version ${fmt(rv)}x, run ${fmt(rr)}x (the API alone ${fmt(api.p50 / floor.p50)}x)`);
    console.log(
      `realm run at p50: node's own start ${fmt(floor.p50)} ms + the API ${fmt(api.p50)} ms + the CLI's modules, connection and exit ${fmt(run.p50 - floor.p50 - api.p50)} ms`,
    );
    return [
      { bench: BENCH, name: 'realm --version p50 / node -e 0', value: rv, limit: 1.5, op: '<=', unit: 'x' },
      { bench: BENCH, name: 'realm run python p50 / node -e 0', value: rr, limit: 2.5, op: '<=', unit: 'x' },
    ];
  } finally {
    agent.destroy();
    await d.stop();
  }
}

runIfMain(import.meta.url, main);
