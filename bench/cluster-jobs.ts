/**
 * Jobs across a cluster: two nodes on a real etcd (Debian's etcd-server on loopback); the client
 * is this process. Placement latency: a trivial job (`true`) with `[targeting] tags = ["far"]`,
 * which only node B has, submitted to node A (written to etcd, placed on B by the elected
 * scheduler, run there and reported) vs the same job submitted to node B itself (the same
 * machinery, no other node involved); each timed from submission until its run is seen placed and
 * until it is seen ended (polled every 5 ms), interleaved. For scale, the same job on a lone
 * daemon (no etcd) too: what the cluster's records in etcd cost. Failover: a job's node killed
 * with -9 mid-attempt, timed until the attempt runs again on the other node (default lease TTL),
 * three times.
 */
import { Client, type JobRun } from '@realm/sdk';
import {
  fmt,
  interleave,
  printLatencies,
  progress,
  progressDone,
  report,
  runIfMain,
  spawnDaemon,
  summarize,
  type Target,
} from './lib.js';
import { etcdSkipReason, startEtcd } from '../test/helpers/etcd.js';
import { startNode, type TestNode } from '../test/helpers/cluster.js';

const BENCH = 'cluster-jobs';
const POLL_MS = 5;
const KILLS = 3;
const LEASE_TTL = 4;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ENDED = ['succeeded', 'failed', 'cancelled'];

let seq = 0;

/** Submit a trivial job to `client`: ms until its run is seen started, and until seen ended. */
async function trivialJob(client: Client, targeting: string): Promise<{ started: number; ended: number; node: string | null }> {
  const name = `bench-${process.pid}-${seq++}`;
  const t0 = performance.now();
  await client.jobs.submit({ toml: `name = "${name}"\n[run]\ncommand = "true"\n${targeting}` });
  let started: number | undefined;
  for (;;) {
    const run: JobRun = await client.jobs.run(name);
    if (started === undefined && run.attempts.length) started = performance.now() - t0;
    if (ENDED.includes(run.state)) {
      const ended = performance.now() - t0;
      if (run.state !== 'succeeded') throw new Error(`job ${name}: ${run.state}: ${run.reason ?? ''}`);
      await client.jobs.remove(name);
      return { started: started ?? ended, ended, node: run.attempts.at(-1)?.node ?? null };
    }
    await sleep(POLL_MS);
  }
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 30;
  const warmup = opts.warmup ?? 5;
  console.log(
    `== ${BENCH}: a trivial job placed on node B (a tag only B has) submitted to node A vs to node B, and on a lone daemon; n=${n} each, ${warmup} warm-up rounds; then a job's node killed -9, lease TTL ${LEASE_TTL} s`,
  );
  const skip = etcdSkipReason();
  if (skip) throw new Error(skip);
  const etcd = await startEtcd();
  const nodes: TestNode[] = [];
  const lone = await spawnDaemon('lone-jobs');
  try {
    const a = await startNode(etcd.cluster, 'node-a', { leaseTtl: LEASE_TTL, tags: ['pool'] });
    nodes.push(a);
    const b = await startNode(etcd.cluster, 'node-b', {
      leaseTtl: LEASE_TTL,
      tags: ['pool', 'far'],
      join: (await a.client.nodes.invite()).token,
    });
    nodes.push(b);
    const alone = new Client({ socketPath: lone.socket });
    const started = { remote: [] as number[], local: [] as number[], lone: [] as number[] };
    const onB = (r: { node: string | null }): void => {
      if (r.node !== 'node-b') throw new Error(`placed on ${r.node ?? 'nowhere'}, not node-b`);
    };
    const samples = await interleave(
      [
        {
          name: 'remote',
          sample: async () => {
            const r = await trivialJob(a.client, '[targeting]\ntags = ["far"]\n');
            onB(r);
            started.remote.push(r.started);
            return r.ended;
          },
        },
        {
          name: 'local',
          sample: async () => {
            const r = await trivialJob(b.client, '[targeting]\ntags = ["far"]\n');
            onB(r);
            started.local.push(r.started);
            return r.ended;
          },
        },
        {
          name: 'lone',
          sample: async () => {
            const r = await trivialJob(alone, '');
            started.lone.push(r.started);
            return r.ended;
          },
        },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    const remote = summarize(samples.get('remote') ?? []);
    const local = summarize(samples.get('local') ?? []);
    const loneEnd = summarize(samples.get('lone') ?? []);
    const remoteStart = summarize(started.remote.slice(-n));
    const localStart = summarize(started.local.slice(-n));
    const loneStart = summarize(started.lone.slice(-n));
    printLatencies([
      ['submitted to A, placed on B: seen placed (ms)', remoteStart],
      ['submitted to B, placed on B: seen placed (ms)', localStart],
      ['lone daemon: seen started (ms)', loneStart],
      ['submitted to A, placed on B: seen ended (ms)', remote],
      ['submitted to B, placed on B: seen ended (ms)', local],
      ['lone daemon: seen ended (ms)', loneEnd],
    ]);
    const ratio = remoteStart.p50 / localStart.p50;
    console.log(
      `submit → placed on a remote node vs on the node asked: ratio p50 ${fmt(ratio)}x; submit → ended ${fmt(remote.p50 / local.p50)}x; (for scale) the cluster vs a lone daemon, submit → ended ${fmt(remote.p50 / loneEnd.p50)}x`,
    );

    // Failover: the node running a job killed -9; until the attempt runs again on the other node.
    const took: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      const name = `failover-${i}`;
      await a.client.jobs.submit({
        toml: `name = "${name}"\n[run]\ncommand = "sleep 30"\n[retry]\nattempts = 1\ndelay = "0s"\n[targeting]\ntags = ["far"]\n`,
      });
      for (;;) {
        const r = await a.client.jobs.run(name);
        if (r.attempts[0]?.state === 'running') break;
        await sleep(20);
      }
      await b.client.nodes.tag('node-a', { add: ['far'] }); // now either node fits
      await sleep(200 + Math.random() * (LEASE_TTL / 3) * 1000);
      const t0 = performance.now();
      await b.kill('SIGKILL');
      for (;;) {
        const r = await a.client.jobs.run(name);
        if (r.attempts.length >= 2 && r.attempts[1]?.state === 'running') break;
        if (performance.now() - t0 > 60_000) throw new Error(`${name}: not re-placed within 60 s`);
        await sleep(POLL_MS * 4);
      }
      took.push(performance.now() - t0);
      await a.client.jobs.cancel(name);
      await a.client.jobs.remove(name);
      await a.client.nodes.tag('node-a', { remove: ['far'] });
      await b.restart();
      while ((await a.client.nodes.get('node-b')).state !== 'up') await sleep(100);
    }
    console.log(
      `job failover (lease TTL ${LEASE_TTL} s): its node killed -9 → the attempt running again elsewhere in ${took.map((t) => fmt(t, 0)).join(', ')} ms`,
    );
    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'job submit → placed on a remote node p50 / on the node submitted to p50',
        value: ratio,
        limit: 2,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: `job's node killed -9 → re-placed and running, worst of ${KILLS} (lease TTL ${LEASE_TTL} s)`,
        value: Math.max(...took) / 1000,
        limit: 5,
        op: '<=',
        unit: ' s',
      },
    ];
    report(targets);
    return targets;
  } finally {
    for (const node of nodes) {
      const left = await node.remove();
      if (left.length) console.error(`${BENCH}: node ${node.id} left ${left.join(', ')}`);
    }
    await lone.stop();
    await etcd.stop();
  }
}

runIfMain(import.meta.url, main);
