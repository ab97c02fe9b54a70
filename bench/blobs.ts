/**
 * The blob store's throughput: a 1 GiB file uploaded (`blobs.put(path)`: chunks, hashed by the
 * client as it reads, hashed and written by the daemon) and downloaded (`blobs.download`: verified
 * by the daemon as it reads and by the client as it writes) by this process, a client of its own,
 * through a daemon in another process (`realm serve`, unix socket), against `cp` of the same file
 * on the same disk. Rounds interleave cp, upload and download; the ratio is cp's median time over
 * the operation's (1.0: as fast as cp). Issue 16's target: ≥ 0.5 each.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@realm/sdk';
import { MiB, fmt, progress, progressDone, report, runIfMain, spawnDaemon, summarize, type Target } from './lib.js';

const BENCH = 'blobs';

export async function main(opts: { sizeMiB?: number; rounds?: number } = {}): Promise<Target[]> {
  const sizeMiB = opts.sizeMiB ?? 1024;
  const rounds = opts.rounds ?? 3;
  console.log(
    `== ${BENCH}: a ${sizeMiB} MiB blob uploaded and downloaded through the daemon (its own process, unix socket) by a client process, vs cp of the same file on the same disk; ${rounds} interleaved rounds`,
  );
  // The data dir and the file are on the same disk (both under the temp dir).
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-blobs-'));
  const d = await spawnDaemon(BENCH);
  try {
    const src = join(dir, 'src');
    const fd = openSync(src, 'w');
    const block = randomBytes(MiB);
    for (let i = 0; i < sizeMiB; i++) writeSync(fd, block);
    closeSync(fd);
    const c = new Client({ socketPath: d.socket });
    const cp: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1}/${rounds}: cp`);
      let t0 = performance.now();
      execFileSync('cp', [src, join(dir, 'copy')]);
      cp.push(performance.now() - t0);
      rmSync(join(dir, 'copy'));
      progress(`round ${r + 1}/${rounds}: upload`);
      t0 = performance.now();
      const info = await c.blobs.put(src);
      up.push(performance.now() - t0);
      if (info.size !== sizeMiB * MiB) throw new Error(`uploaded ${info.size} bytes`);
      progress(`round ${r + 1}/${rounds}: download`);
      t0 = performance.now();
      await c.blobs.download(info.digest, join(dir, 'out'));
      down.push(performance.now() - t0);
      rmSync(join(dir, 'out'));
      await c.blobs.rm(info.digest);
    }
    progressDone();
    const [cpS, upS, downS] = [summarize(cp), summarize(up), summarize(down)];
    const mbps = (ms: number): string => fmt((sizeMiB * MiB) / 1e6 / (ms / 1000), 0);
    for (const [name, s] of [
      ['cp', cpS],
      ['upload', upS],
      ['download', downS],
    ] as const)
      console.log(`${name.padEnd(8)}  median ${fmt(s.p50, 0).padStart(6)} ms  (${mbps(s.p50)} MB/s; min ${fmt(s.min, 0)} ms)`);
    const targets: Target[] = [
      { bench: BENCH, name: 'upload speed / cp speed', value: cpS.p50 / upS.p50, limit: 0.5, op: '>=', unit: '' },
      { bench: BENCH, name: 'download speed / cp speed', value: cpS.p50 / downS.p50, limit: 0.5, op: '>=', unit: '' },
    ];
    report(targets);
    return targets;
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, () => main());
