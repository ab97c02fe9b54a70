/**
 * Blobs across a cluster of two nodes (real etcd on loopback, each node a `realm serve --cluster`
 * process of its own; the client is this process, over TCP). A blob put on node A is downloaded
 * whole (and hashed by the client) three ways per round, interleaved: through node B the first
 * time (B fetches it from A, verifying it into its store, then serves it), through B again (its
 * copy), and from node A (local; last, when A's page cache holds it: the fastest baseline). B's copy is removed after each round. Ratios are of medians from
 * the same run (the machine is noisy): the first read through another node against a local read.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Client } from '@realm/sdk';
import { MiB, fmt, progress, progressDone, report, runIfMain, summarize, type Target } from './lib.js';
import { etcdSkipReason, startEtcd } from '../test/helpers/etcd.js';
import { startNode, type TestNode } from '../test/helpers/cluster.js';

const BENCH = 'cluster-blobs';

/** ms to download `digest` from `c` whole, checking its digest here. */
async function timedRead(c: Client, digest: string): Promise<number> {
  const t0 = performance.now();
  const hash = createHash('sha256');
  for await (const chunk of Readable.fromWeb(await c.blobs.get(digest))) hash.update(chunk as Buffer);
  const ms = performance.now() - t0;
  if (`sha256:${hash.digest('hex')}` !== digest) throw new Error(`read of ${digest} gave other bytes`);
  return ms;
}

export async function main(opts: { sizeMiB?: number; rounds?: number } = {}): Promise<Target[]> {
  const sizeMiB = opts.sizeMiB ?? 256;
  const rounds = opts.rounds ?? 5;
  console.log(
    `== ${BENCH}: a ${sizeMiB} MiB blob on node A read from A, through node B the first time (fetched from A), and through B again; ${rounds} interleaved rounds`,
  );
  const skip = etcdSkipReason();
  if (skip) throw new Error(skip);
  const etcd = await startEtcd();
  const nodes: TestNode[] = [];
  try {
    const a = await startNode(etcd.cluster, 'node-a');
    nodes.push(a);
    const b = await startNode(etcd.cluster, 'node-b', { join: (await a.client.nodes.invite()).token });
    nodes.push(b);
    const local: number[] = [];
    const first: number[] = [];
    const again: number[] = [];
    for (let i = 0; i < rounds; i++) {
      progress(`round ${i + 1}/${rounds}`);
      // Fresh bytes each round, so neither node has them from a round before.
      const block = Buffer.alloc(MiB, i + 1);
      const put = await a.client.blobs.put(
        Readable.toWeb(
          Readable.from(
            (function* () {
              for (let k = 0; k < sizeMiB; k++) yield block;
            })(),
          ),
        ) as ReadableStream<Uint8Array>,
      );
      // The local read last: by then A's page cache holds the blob (the fastest baseline).
      first.push(await timedRead(b.client, put.digest));
      again.push(await timedRead(b.client, put.digest));
      local.push(await timedRead(a.client, put.digest));
      await b.client.blobs.rm(put.digest);
      await a.client.blobs.rm(put.digest);
    }
    progressDone();
    const [l, f, g] = [summarize(local), summarize(first), summarize(again)];
    const mbps = (ms: number): string => fmt((sizeMiB * MiB) / 1e6 / (ms / 1000), 0);
    for (const [name, s] of [
      ['from A (local)', l],
      ['through B, first', f],
      ['through B, again', g],
    ] as const)
      console.log(`${name.padEnd(17)}  median ${fmt(s.p50, 0).padStart(6)} ms  (${mbps(s.p50)} MB/s; min ${fmt(s.min, 0)} ms)`);
    const targets: Target[] = [
      // The first read through B moves the bytes twice (A → B's disk, verified; then B → client):
      // about twice a local read, and no worse than three times.
      {
        bench: BENCH,
        name: 'first read through another node / local read (p50)',
        value: f.p50 / l.p50,
        limit: 3,
        op: '<=',
        unit: 'x',
      },
      {
        bench: BENCH,
        name: 'later read through that node / local read (p50)',
        value: g.p50 / l.p50,
        limit: 1.5,
        op: '<=',
        unit: 'x',
      },
    ];
    report(targets);
    return targets;
  } finally {
    for (const n of nodes) await n.remove();
    await etcd.stop();
  }
}

runIfMain(import.meta.url, () => main());
