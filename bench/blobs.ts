/**
 * The blob store's throughput: a 1 GiB file uploaded (`realm blob put FILE`) and downloaded
 * (`realm blob get DIGEST OUT`) by the CLI, each command a process of its own as a user runs it,
 * through a daemon in another process (`realm serve`, unix socket), against baselines measured in
 * the same rounds on the same disk (the file and the data dir are both under the temp dir):
 *
 * - `cp`: a copy into the page cache (copy_file_range, in the kernel), nothing on the disk yet;
 * - `cp + sync`: the same copy made durable (fsync of the copy), as the store makes an upload;
 * - one sha256 pass over the file (Node's, the daemon's and the client's own: OpenSSL's with SHA-NI
 *   where the CPU has it, read 4 MiB at a time; `openssl dgst` reads in small pieces and is slower),
 *   the floor of anything that checks every byte's digest (an upload and a download are each
 *   hashed by the client and the daemon, in two processes: on two idle cores they can come close
 *   to it but not under it).
 *
 * The ratio is the baseline's median time over the operation's (1.0: as fast). Issue 16's target:
 * ≥ 0.5 of cp. A download is like cp (the client does not fsync what it writes); an upload is
 * durable, like cp + sync, and is shown against both.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@realm/sdk';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { MiB, fmt, progress, progressDone, report, runIfMain, spawnDaemon, summarize, type Target } from './lib.js';

const BENCH = 'blobs';

/** One sha256 pass over the file named by argv[1], in a process of its own (as the CLI is). */
const HASH_FILE = `const fs = require('node:fs'), h = require('node:crypto').createHash('sha256');
const b = Buffer.allocUnsafe(4 << 20), fd = fs.openSync(process.argv[1]);
for (let n; (n = fs.readSync(fd, b)) > 0; ) h.update(b.subarray(0, n));
h.digest();`;

/** How long `fn` takes (ms). */
function timed(fn: () => void): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

/**
 * CPU seconds (user + system) from /proc: `self` counts this process's waited-for children (the
 * CLI, cp, the hashing process), a pid that process with all its threads. Less noisy than wall
 * time on a shared host: what another process takes from the cores does not count here.
 */
function cpuSeconds(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the name: state is field 3; utime 14, stime 15, cutime 16, cstime 17 (1-based, man 5 proc).
  const at = (n: number): number => Number(f[n - 3]);
  return (pid === 'self' ? at(16) + at(17) : at(14) + at(15)) / 100;
}

export async function main(opts: { sizeMiB?: number; rounds?: number } = {}): Promise<Target[]> {
  const sizeMiB = opts.sizeMiB ?? 1024;
  const rounds = opts.rounds ?? 3;
  console.log(
    `== ${BENCH}: a ${sizeMiB} MiB blob uploaded and downloaded by the CLI (a process per command) through the daemon (its own process, unix socket), vs cp, cp + sync and one sha256 pass (node) of the same file on the same disk; ${rounds} interleaved rounds`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-blobs-'));
  const d = await spawnDaemon(BENCH);
  try {
    const src = join(dir, 'src');
    const fd = openSync(src, 'w');
    const block = randomBytes(MiB);
    for (let i = 0; i < sizeMiB; i++) writeSync(fd, block);
    closeSync(fd);
    const c = new Client({ socketPath: d.socket });
    const cli = (...args: string[]): string =>
      execFileSync(process.execPath, [join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js'), ...args], {
        env: { ...process.env, REALM_URL: `unix:${d.socket}` },
        encoding: 'utf8',
      });
    const copy = join(dir, 'copy');
    const out = join(dir, 'out');
    const samples = {
      cp: [] as number[],
      cpSync: [] as number[],
      hash: [] as number[],
      up: [] as number[],
      down: [] as number[],
    };
    // CPU seconds per operation: the command's process (children of this one) and the daemon's.
    const cpu = {
      cp: [] as number[],
      hash: [] as number[],
      upCli: [] as number[],
      upDaemon: [] as number[],
      downCli: [] as number[],
      downDaemon: [] as number[],
    };
    const daemonPid = d.child.pid ?? 0;
    /** Time `fn` and note the CPU it took in the command's process and in the daemon. */
    const measured = (fn: () => void, wall: number[], cli?: number[], daemon?: number[]): void => {
      const [c0, d0] = [cpuSeconds('self'), cpuSeconds(daemonPid)];
      wall.push(timed(fn));
      cli?.push(cpuSeconds('self') - c0);
      daemon?.push(cpuSeconds(daemonPid) - d0);
    };
    for (let r = 0; r < rounds; r++) {
      progress(`round ${r + 1}/${rounds}: cp`);
      measured(() => execFileSync('cp', [src, copy]), samples.cp, cpu.cp);
      rmSync(copy);
      progress(`round ${r + 1}/${rounds}: cp + sync`);
      samples.cpSync.push(
        timed(() => {
          execFileSync('cp', [src, copy]);
          execFileSync('sync', [copy]); // coreutils' sync FILE: fsync of that file
        }),
      );
      rmSync(copy);
      progress(`round ${r + 1}/${rounds}: sha256`);
      measured(() => execFileSync(process.execPath, ['-e', HASH_FILE, src]), samples.hash, cpu.hash);
      progress(`round ${r + 1}/${rounds}: realm blob put`);
      let digest = '';
      measured(() => (digest = cli('blob', 'put', src).trim()), samples.up, cpu.upCli, cpu.upDaemon);
      progress(`round ${r + 1}/${rounds}: realm blob get`);
      measured(() => cli('blob', 'get', digest, out), samples.down, cpu.downCli, cpu.downDaemon);
      if (statSync(out).size !== sizeMiB * MiB) throw new Error(`downloaded ${statSync(out).size} bytes`);
      rmSync(out);
      await c.blobs.rm(digest);
    }
    progressDone();
    const s = {
      cp: summarize(samples.cp),
      cpSync: summarize(samples.cpSync),
      hash: summarize(samples.hash),
      up: summarize(samples.up),
      down: summarize(samples.down),
    };
    const mbps = (ms: number): string => fmt((sizeMiB * MiB) / 1e6 / (ms / 1000), 0);
    for (const [name, x] of [
      ['cp', s.cp],
      ['cp + sync', s.cpSync],
      ['sha256 (node)', s.hash],
      ['realm blob put', s.up],
      ['realm blob get', s.down],
    ] as const)
      console.log(`${name.padEnd(16)}  median ${fmt(x.p50, 0).padStart(6)} ms  (${mbps(x.p50)} MB/s; min ${fmt(x.min, 0)} ms)`);
    console.log(
      `one sha256 pass runs at ${fmt(s.cp.p50 / s.hash.p50)} of cp's speed here; put runs at ${fmt(s.hash.p50 / s.up.p50)} and get at ${fmt(s.hash.p50 / s.down.p50)} of it;`,
      `put runs at ${fmt(s.cp.p50 / s.up.p50)} of cp's speed (page cache only, not durable)`,
    );
    const gib = (sizeMiB * MiB) / 1024 ** 3;
    const perGiB = (xs: number[]): string => fmt(summarize(xs).p50 / gib);
    console.log(
      `CPU s per GiB (median): cp ${perGiB(cpu.cp)}, sha256 ${perGiB(cpu.hash)};`,
      `put ${perGiB(cpu.upCli)} CLI + ${perGiB(cpu.upDaemon)} daemon; get ${perGiB(cpu.downCli)} CLI + ${perGiB(cpu.downDaemon)} daemon`,
    );
    console.log(
      `each round (wall ms): put ${samples.up.map((x) => fmt(x, 0)).join(', ')}; get ${samples.down.map((x) => fmt(x, 0)).join(', ')}; cp ${samples.cp.map((x) => fmt(x, 0)).join(', ')}`,
    );
    // The least a verified transfer costs: the daemon and the client each hash every byte (a
    // sha256 pass, its read included), and the bytes are copied at least as often as cp copies
    // them (a read and a write) besides; spread perfectly over the cores, that CPU bounds the
    // wall time from below, whatever is pipelined. cp's own CPU stands for its time on idle cores.
    const med = (xs: number[]): number => summarize(xs).p50 / gib;
    const floorCpu = 2 * med(cpu.hash) + med(cpu.cp);
    const cores = availableParallelism();
    console.log(
      `floor: a transfer hashed at both ends needs at least 2 sha256 passes + one cp = ${fmt(floorCpu)} CPU s per GiB,`,
      `${fmt(floorCpu / cores)} s on ${cores} idle cores: at most ${fmt((med(cpu.cp) * cores) / floorCpu)} of cp's speed on idle cores;`,
      `measured: put ${fmt(med(cpu.upCli) + med(cpu.upDaemon))}, get ${fmt(med(cpu.downCli) + med(cpu.downDaemon))} CPU s per GiB`,
    );
    const targets: Target[] = [
      { bench: BENCH, name: 'upload speed / (cp + sync) speed', value: s.cpSync.p50 / s.up.p50, limit: 0.5, op: '>=', unit: '' },
      { bench: BENCH, name: 'download speed / cp speed', value: s.cp.p50 / s.down.p50, limit: 0.5, op: '>=', unit: '' },
    ];
    report(targets);
    return targets;
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, () => main());
