/**
 * A trivial job as a user sees it: a client process of its own submits `{name, run: {command:
 * 'true'}}` to `/v1/jobs` on a kept-alive connection to a daemon in another process (`realm serve`,
 * unix socket) and waits for the run's end as `realm job submit --wait` does (`POST /v1/jobs?wait=30`:
 * submitted and answered when the run ended, one request; also printed: submitted, then waited for
 * with `GET /v1/jobs/ID/wait`, as the SDK's `jobs.wait` does for a run submitted earlier); against a one-shot run of the same
 * command (`{language: 'bash', code: 'true'}` to `/v1/runs`), request to answer. Also printed: submit
 * to the attempt's start (the daemon's clock, the same machine's), and the same job with one
 * artifact (`touch a`, artifact `a`): a job with inputs or artifacts runs in a sandbox of the store,
 * one with neither in a one-shot sandbox. Interleaved ~30 ms apart; ratios of percentiles from the
 * same run (the machine is noisy).
 */
import { Agent } from 'node:http';
import {
  fmt,
  interleave,
  printLatencies,
  progress,
  progressDone,
  report,
  runIfMain,
  socketRequest as call,
  spawnDaemon,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'jobs';
const GAP_MS = 30;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunView {
  id: string;
  state: string;
  attempts: { startedAt: string }[];
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 100;
  const warmup = opts.warmup ?? 10;
  console.log(
    `== ${BENCH}: a trivial job (command "true") submitted to /v1/jobs?wait=30 by a client process (answered when it ended), vs a one-shot run of "true" (bash) to /v1/runs; ${GAP_MS} ms apart; n=${n} each, ${warmup} warm-up rounds`,
  );
  const d = await spawnDaemon(BENCH);
  const jobAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const runAgent = new Agent({ keepAlive: true, maxSockets: 1 });
  const toStart: number[] = [];
  const names: string[] = [];
  /**
   * Submit a job and wait for its end — in the submit's own request (`?wait`), or after it with
   * `GET …/wait` — : ms from submit to ended (and submit → attempt started into `starts`).
   */
  const job = async (name: string, run: object, starts: number[], artifacts: object[] = [], inOne = true): Promise<number> => {
    names.push(name);
    const t0 = performance.now();
    const submitted = Date.now();
    const r = await call(
      d.socket,
      jobAgent,
      'POST',
      `/v1/jobs${inOne ? '?wait=30' : ''}`,
      JSON.stringify({ name, run, artifacts }),
    );
    if (r.status !== 201) throw new Error(`submit: ${r.status} ${r.text}`);
    const first = (JSON.parse(r.text) as { runs: RunView[] }).runs[0];
    const id = first?.id ?? '';
    if (first?.state === 'succeeded') {
      starts.push(Date.parse(first.attempts[0]?.startedAt ?? '') - submitted);
      return performance.now() - t0;
    }
    if (inOne) throw new Error(`job ${id} not ended at its submit's answer: ${r.text}`);
    for (;;) {
      // As the SDK's jobs.wait (and `realm job submit --wait`) waits: the daemon answers when the run ends.
      const g = await call(d.socket, jobAgent, 'GET', `/v1/jobs/${id}/wait?timeout=30`, '');
      const found = JSON.parse(g.text) as RunView;
      if (found.state === 'succeeded') {
        const ms = performance.now() - t0;
        starts.push(Date.parse(found.attempts[0]?.startedAt ?? '') - submitted);
        return ms;
      }
      if (['failed', 'cancelled'].includes(found.state)) throw new Error(`job ${id} ${found.state}: ${g.text}`);
    }
  };
  try {
    const samples = await interleave(
      [
        {
          name: 'job',
          sample: (round) => job(`bench-${round + warmup}`, { command: 'true' }, toStart),
          after: () => sleep(GAP_MS),
        },
        {
          name: 'job-two',
          sample: (round) => job(`bench-2-${round + warmup}`, { command: 'true' }, [], [], false),
          after: () => sleep(GAP_MS),
        },
        {
          name: 'job-artifact',
          sample: (round) => job(`bench-a-${round + warmup}`, { command: 'touch a' }, [], [{ path: 'a', name: 'a' }]),
          after: () => sleep(GAP_MS),
        },
        {
          name: 'run',
          sample: async () => {
            const r = await call(d.socket, runAgent, 'POST', '/v1/runs', JSON.stringify({ language: 'bash', code: 'true' }));
            if (r.status !== 200 || (JSON.parse(r.text) as { verdict: string }).verdict !== 'ok')
              throw new Error(`run: ${r.text}`);
            return r.ms;
          },
          after: () => sleep(GAP_MS),
        },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const trivial = summarize(samples.get('job') ?? []);
    const withArtifact = summarize(samples.get('job-artifact') ?? []);
    const twoRequests = summarize(samples.get('job-two') ?? []);
    const run = summarize(samples.get('run') ?? []);
    printLatencies([
      ['job: submitted and waited for in one request (ms)', trivial],
      ['  submit to its attempt started (daemon clock, ms)', summarize(toStart.slice(warmup))],
      ['job: submitted, then GET …/wait (ms)', twoRequests],
      ['job with an artifact (a sandbox of the store, ms)', withArtifact],
      ['one-shot run of the same command (ms)', run],
    ]);
    const ratio = trivial.p50 / run.p50;
    console.log(
      `ratio p50 ${fmt(ratio)}x, p90 ${fmt(trivial.p90 / run.p90)}x; submitted then waited for p50 ${fmt(twoRequests.p50 / run.p50)}x; a job with an artifact p50 ${fmt(withArtifact.p50 / run.p50)}x`,
    );
    const targets: Target[] = [
      { bench: BENCH, name: 'trivial job submit→ended p50 / one-shot run p50', value: ratio, limit: 1.5, op: '<=', unit: 'x' },
    ];
    report(targets);
    return targets;
  } finally {
    for (const name of names) await call(d.socket, jobAgent, 'DELETE', `/v1/jobs/${name}`, '').catch(() => undefined);
    await d.stop();
  }
}

runIfMain(import.meta.url, main);
