/**
 * The blob store's throughput: a 1 GiB file uploaded (`blobs.put(path)`: chunks, hashed by the
 * client as it reads, hashed and written by the daemon) and downloaded (`blobs.download`: verified
 * by the daemon as it reads and by the client as it writes) by this process, a client of its own,
 * through a daemon in another process (`realm serve`, unix socket), against `cp` of the same file
 * on the same disk. Rounds interleave cp, upload and download; the ratio is cp's median time over
 * the operation's (1.0: as fast as cp). Issue 16's target: ≥ 0.5 each. `sha256sum` of the same file is
 * timed too: no upload or download that checks every byte's digest can beat it, and where cp copies
 * in the kernel (copy_file_range) it may be well under half of cp's speed by itself.
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
    const hashing: number[] = [];
    const up: number[] = [];
    const down: number[] = [];
    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1}/${rounds}: cp`);
      let t0 = performance.now();
      execFileSync('cp', [src, join(dir, 'copy')]);
      cp.push(performance.now() - t0);
      rmSync(join(dir, 'copy'));
      // The floor of anything that checks a sha256 on the way (one core, no I/O to speak of).
      progress(`round ${r + 1}/${rounds}: sha256sum`);
      t0 = performance.now();
      execFileSync('sha256sum', [src]);
      hashing.push(performance.now() - t0);
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
    const [cpS, upS, downS, hashS] = [summarize(cp), summarize(up), summarize(down), summarize(hashing)];
    const mbps = (ms: number): string => fmt((sizeMiB * MiB) / 1e6 / (ms / 1000), 0);
    for (const [name, s] of [
      ['cp', cpS],
      ['sha256sum', hashS],
      ['upload', upS],
      ['download', downS],
    ] as const)
      console.log(`${name.padEnd(9)}  median ${fmt(s.p50, 0).padStart(6)} ms  (${mbps(s.p50)} MB/s; min ${fmt(s.min, 0)} ms)`);
    console.log(
      `sha256sum alone runs at ${fmt(cpS.p50 / hashS.p50)} of cp's speed here: the ceiling of a store that hashes every byte it takes and gives;`,
      `upload and download (each hashed by the client and by the daemon) run at ${fmt(hashS.p50 / upS.p50)} and ${fmt(hashS.p50 / downS.p50)} of sha256sum's`,
    );
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
