/**
 * A cluster of two nodes on a real etcd (Debian's etcd-server on loopback), each a `realm serve
 * --cluster` process of its own; the client is this process. Placement latency: a trivial run
 * (`bash`, `true`) with `placement: {node: 'node-b'}` sent to node A (placed on B, forwarded with
 * the peer credential) vs the same run sent to node B itself, request to answer on a kept-alive
 * connection, interleaved ~30 ms apart; the ratio of percentiles from the same run (the machine is
 * noisy). Failover: node B stopped (SIGTERM: its lease revoked) and killed with -9 (its lease runs
 * out; three times), each timed until node A lists it `down`, polled every 20 ms.
 */
import { Agent, request } from 'node:http';
import { fmt, interleave, printLatencies, progress, progressDone, report, runIfMain, summarize, type Target } from './lib.js';
import { etcdSkipReason, startEtcd } from '../test/helpers/etcd.js';
import { startNode, type TestNode } from '../test/helpers/cluster.js';

const BENCH = 'cluster';
const GAP_MS = 30;
const POLL_MS = 20;
/** Kills timed. */
const KILLS = 3;
/** The daemon's default lease TTL (realm serve --lease-ttl). */
const LEASE_TTL = 5;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** POST a trivial run placed on node-b to `node` on `agent`'s connection: ms to the whole answer, and the node that ran it. */
function placedRun(node: TestNode, agent: Agent): Promise<{ ms: number; ranOn: string }> {
  const body = JSON.stringify({ language: 'bash', code: 'true', placement: { node: 'node-b' } });
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      `${node.url}/v1/runs`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${node.client.token ?? ''}`,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.once('error', reject);
        res.once('end', () => {
          const ms = performance.now() - t0;
          const ranOn = String(res.headers['x-realm-node'] ?? '');
          if (res.statusCode !== 200 || (JSON.parse(text) as { verdict?: string }).verdict !== 'ok')
            return reject(new Error(`run via ${node.id}: ${res.statusCode} ${text}`));
          resolve({ ms, ranOn });
        });
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** ms from now until `node` lists node-b `down`. */
async function untilDown(node: TestNode, t0: number): Promise<number> {
  for (;;) {
    const state = await node.client.nodes.get('node-b').then(
      (n) => n.state,
      () => 'error',
    );
    if (state === 'down') return performance.now() - t0;
    if (performance.now() - t0 > 60_000) throw new Error('node-b not down within 60 s');
    await sleep(POLL_MS);
  }
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 60;
  const warmup = opts.warmup ?? 10;
  console.log(
    `== ${BENCH}: a trivial run (bash "true") placed on node B, sent to node A (forwarded) vs to node B itself; ${GAP_MS} ms apart; n=${n} each, ${warmup} warm-up rounds; then failover with lease TTL ${LEASE_TTL} s`,
  );
  const skip = etcdSkipReason();
  if (skip) throw new Error(skip);
  const etcd = await startEtcd();
  const nodes: TestNode[] = [];
  const agents = [new Agent({ keepAlive: true, maxSockets: 1 }), new Agent({ keepAlive: true, maxSockets: 1 })];
  try {
    // The first node founds the cluster; the second joins with its invite.
    const a = await startNode(etcd.cluster, 'node-a', { leaseTtl: LEASE_TTL });
    nodes.push(a);
    const b = await startNode(etcd.cluster, 'node-b', { leaseTtl: LEASE_TTL, join: (await a.client.nodes.invite()).token });
    nodes.push(b);
    const wrongNode = (where: string, ranOn: string): Error => new Error(`a run sent ${where} ran on ${ranOn}, not node-b`);
    const samples = await interleave(
      [
        {
          name: 'remote',
          sample: async () => {
            const r = await placedRun(a, agents[0]);
            if (r.ranOn !== 'node-b') throw wrongNode('to node-a', r.ranOn);
            return r.ms;
          },
          after: () => sleep(GAP_MS),
        },
        {
          name: 'local',
          sample: async () => {
            const r = await placedRun(b, agents[1]);
            if (r.ranOn !== 'node-b') throw wrongNode('to node-b', r.ranOn);
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
    const remote = summarize(samples.get('remote') ?? []);
    const local = summarize(samples.get('local') ?? []);
    printLatencies([
      ['sent to node A, placed on node B (ms)', remote],
      ['sent to node B itself (ms)', local],
    ]);
    const ratio = remote.p50 / local.p50;
    console.log(
      `ratio p50 ${fmt(ratio)}x, p90 ${fmt(remote.p90 / local.p90)}x; forwarding adds p50 ${fmt(remote.p50 - local.p50)} ms`,
    );
    for (const agent of agents) agent.destroy();

    // Failover: a node that leaves, then one that dies (a few times: where the kill falls between
    // two keepalives moves the lease's end by up to a third of the TTL).
    const upAgain = async (): Promise<void> => {
      await b.restart();
      for (let i = 0; (await a.client.nodes.get('node-b')).state !== 'up'; i++) {
        if (i > 300) throw new Error('node-b not up again within 30 s');
        await sleep(100);
      }
    };
    let t0 = performance.now();
    await b.stop();
    const afterStop = await untilDown(a, t0);
    const kills: number[] = [];
    for (let i = 0; i < KILLS; i++) {
      await upAgain();
      await sleep(Math.random() * (LEASE_TTL / 3) * 1000);
      t0 = performance.now();
      await b.kill('SIGKILL');
      kills.push(await untilDown(a, t0));
    }
    const afterKill = Math.max(...kills);
    console.log(
      `failover (lease TTL ${LEASE_TTL} s): node B stopped (SIGTERM, lease revoked) → down on node A in ${fmt(afterStop, 0)} ms; killed with -9 → down in ${kills.map((k) => fmt(k, 0)).join(', ')} ms`,
    );
    const targets: Target[] = [
      {
        bench: BENCH,
        name: 'run placed on a remote node p50 / on that node itself p50',
        value: ratio,
        limit: 2,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: `node killed with -9 → listed down, worst of ${KILLS} (lease TTL ${LEASE_TTL} s)`,
        value: afterKill / 1000,
        limit: LEASE_TTL + 1,
        op: '<=',
        unit: ' s',
      },
    ];
    report(targets);
    return targets;
  } finally {
    for (const agent of agents) agent.destroy();
    for (const node of nodes) {
      const left = await node.remove();
      if (left.length) console.error(`${BENCH}: node ${node.id} left ${left.join(', ')}`);
    }
    await etcd.stop();
  }
}

runIfMain(import.meta.url, main);
