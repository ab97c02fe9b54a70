/**
 * Host memory per idle sandbox: 500 sandboxes created (8 at a time) and left idle, then
 *   - MemAvailable (from /proc/meminfo) before − after, / 500: everything the host lost,
 *     kernel side included (page tables, slab, kernel stacks, tmpfs, cgroup bookkeeping);
 *   - the sum of PSS (/proc/PID/smaps_rollup) of every process of the sandbox uid, / 500:
 *     what the sandboxes' own processes map;
 *   - the daemon's RSS growth (the daemon runs in this process).
 * Nothing is dropped from caches in between. Baseline in the same run: 500 bare idle processes
 * (`/usr/bin/sleep infinity` as the sandbox uid) measured the same way, before the sandboxes.
 * At the end every sandbox is destroyed and the host is checked for leftovers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, Sandbox } from '@realm/sdk';
import { A_SANDBOX_UID, isSandboxUid, leftovers, removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import {
  MiB,
  fmt,
  meminfo,
  pool,
  processes,
  progress,
  progressDone,
  report,
  runIfMain,
  smapsRollup,
  summarize,
  timeMs,
  type Target,
} from './lib.js';

const BENCH = 'idle-memory';
/** /proc/meminfo fields whose change shows where kernel-side memory went. */
const KERNEL_FIELDS = ['Shmem', 'Slab', 'SUnreclaim', 'KernelStack', 'PageTables', 'Percpu'] as const;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Bytes held by each slab cache (num_slabs × pages per slab × page size), from /proc/slabinfo. */
function slabs(): Map<string, number> {
  const out = new Map<string, number>();
  try {
    for (const line of readFileSync('/proc/slabinfo', 'utf8').split('\n').slice(2)) {
      const f = line.split(/\s+/);
      const name = f[0];
      // name active num objsize objperslab pagesperslab : tunables l b s : slabdata active num shared
      if (name && f.length >= 16) out.set(name, Number(f[14]) * Number(f[5]) * 4096);
    }
  } catch {
    /* not readable here */
  }
  return out;
}

interface Snapshot {
  slabs: Map<string, number>;
  available: number;
  kernel: Record<string, number>;
  /** Sum of PSS of every process of the sandbox uid. */
  pss: number;
  pssAnon: number;
  /** PSS of the processes `mine` selects, by process name (count, bytes). */
  own: Map<string, { count: number; pss: number }>;
  procs: Map<string, number>;
  rss: number;
  heapUsed: number;
}

/** The memory-cgroup path of a process (v1 `memory` line, or the v2 line). */
function memoryCgroup(pid: number): string {
  try {
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const line = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l)) ?? lines.find((l) => l.startsWith('0::')) ?? '';
    return line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
  } catch {
    return '';
  }
}

/**
 * Settle (GC, a pause), then read everything; MemAvailable is the median of 5 readings.
 * `mine` picks this benchmark's own processes among the sandbox uid's (others may run sandboxes
 * on the same host while we measure).
 */
async function snapshot(mine: (pid: number) => boolean): Promise<Snapshot> {
  gc();
  await sleep(500);
  const avail: number[] = [];
  for (let i = 0; i < 5; i++) {
    avail.push(meminfo('MemAvailable'));
    await sleep(100);
  }
  let pss = 0;
  let pssAnon = 0;
  const procs = new Map<string, number>();
  const own = new Map<string, { count: number; pss: number }>();
  for (const p of processes()) {
    if (!isSandboxUid(p.uid)) continue;
    const r = smapsRollup(p.pid);
    pss += r.Pss ?? 0;
    pssAnon += r.Pss_Anon ?? 0;
    procs.set(p.name, (procs.get(p.name) ?? 0) + 1);
    if (mine(p.pid)) {
      const o = own.get(p.name) ?? { count: 0, pss: 0 };
      own.set(p.name, { count: o.count + 1, pss: o.pss + (r.Pss ?? 0) });
    }
  }
  const kernel: Record<string, number> = {};
  for (const f of KERNEL_FIELDS) kernel[f] = meminfo(f);
  const mu = process.memoryUsage();
  return {
    slabs: slabs(),
    available: summarize(avail).p50,
    kernel,
    pss,
    pssAnon,
    own,
    procs,
    rss: mu.rss,
    heapUsed: mu.heapUsed,
  };
}

interface PerUnit {
  available: number;
  pss: number;
  pssAnon: number;
  /** PSS of our own processes only (no before/after difference: they did not exist before). */
  ownPss: number;
  ownByName: string;
  /** The slab caches that grew most, per unit. */
  topSlabs: string;
  rss: number;
  heap: number;
  kernel: Record<string, number>;
}

function perUnit(before: Snapshot, after: Snapshot, count: number): PerUnit {
  const kernel: Record<string, number> = {};
  for (const f of KERNEL_FIELDS) kernel[f] = ((after.kernel[f] ?? 0) - (before.kernel[f] ?? 0)) / count;
  const own = [...after.own];
  const grew = [...after.slabs]
    .map(([name, b]): [string, number] => [name, (b - (before.slabs.get(name) ?? 0)) / count])
    .sort((x, y) => y[1] - x[1]);
  return {
    topSlabs: grew
      .slice(0, 8)
      .map(([name, b]) => `${name} ${fmt(b / 1024, 0)}`)
      .join(', '),
    available: (before.available - after.available) / count,
    pss: (after.pss - before.pss) / count,
    pssAnon: (after.pssAnon - before.pssAnon) / count,
    ownPss: own.reduce((a, [, o]) => a + o.pss, 0) / count,
    ownByName: own.map(([name, o]) => `${o.count}× ${name} ${fmt(o.pss / o.count / 1024, 0)} KiB each`).join(', ') || 'none',
    rss: (after.rss - before.rss) / count,
    heap: (after.heapUsed - before.heapUsed) / count,
    kernel,
  };
}

function procList(s: Snapshot): string {
  return [...s.procs].map(([name, n]) => `${n}× ${name}`).join(', ') || 'none';
}

/** The baseline: `count` idle `sleep infinity` processes as the sandbox uid. */
async function bareIdle(count: number): Promise<PerUnit> {
  const kids: ChildProcess[] = [];
  const pids = new Set<number>();
  const mine = (pid: number): boolean => pids.has(pid);
  const before = await snapshot(mine);
  try {
    for (let i = 0; i < count; i++) {
      const k = spawn('/usr/bin/sleep', ['infinity'], {
        stdio: 'ignore',
        uid: A_SANDBOX_UID,
        gid: A_SANDBOX_UID,
        env: {},
        cwd: '/',
      });
      kids.push(k);
      if (k.pid) pids.add(k.pid);
    }
    await sleep(300);
    const after = await snapshot(mine);
    return perUnit(before, after, count);
  } finally {
    const gone = kids.map(
      (k) => new Promise((r) => (k.exitCode !== null || k.signalCode !== null ? r(undefined) : k.once('exit', r))),
    );
    for (const k of kids) k.kill('SIGKILL');
    await Promise.all(gone);
  }
}

function printRow(label: string, u: PerUnit): void {
  const pad = ''.padEnd(label.length);
  console.log(
    `${label} MemAvailable drop ${fmt(u.available / MiB, 3)} MiB  |  PSS of sandbox uids ${fmt(u.pss / MiB, 3)} MiB (anon ${fmt(u.pssAnon / MiB, 3)})  |  daemon RSS ${fmt(u.rss / MiB, 3)} MiB (JS heap ${fmt(u.heap / MiB, 3)})`,
  );
  console.log(`${pad} own processes only: PSS ${fmt(u.ownPss / MiB, 3)} MiB: ${u.ownByName}`);
  console.log(
    `${pad} kernel (/proc/meminfo deltas, MiB): ${KERNEL_FIELDS.map((f) => `${f} ${fmt((u.kernel[f] ?? 0) / MiB, 3)}`).join('  ')}`,
  );
  console.log(`${pad} slab caches that grew most (KiB): ${u.topSlabs}`);
}

/** p50 of `n` sequential create (timed) + destroy (untimed), for create latency at a given load. */
async function createP50(client: Client, n: number): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < n; i++) {
    let sb: Sandbox | undefined;
    xs.push(await timeMs(async () => (sb = await Sandbox.create({}, client))));
    await sb?.destroy();
  }
  return summarize(xs).p50;
}

export async function main(opts: { count?: number; concurrency?: number } = {}): Promise<Target[]> {
  const count = opts.count ?? 500;
  const concurrency = opts.concurrency ?? 8;
  console.log(
    `== ${BENCH}: ${count} idle sandboxes (created ${concurrency} at a time, default limits: memory 512m), host memory per sandbox; baseline: ${count} idle bare processes`,
  );
  const t = await startTestDaemon({ maxSandboxes: 1000 });
  const sandboxes: Sandbox[] = [];
  try {
    // Warm up the daemon (runtime files, JIT, HTTP connections) so its growth is the sandboxes'.
    await pool(2 * concurrency, concurrency, async () => {
      const sb = await Sandbox.create({}, t.client);
      await sb.exec(['true']);
      await sb.destroy();
    });

    const idleCreate = await createP50(t.client, 15);
    const base = await bareIdle(count);

    const ours = `/${t.cgroupRoot}/`;
    const mine = (pid: number): boolean => memoryCgroup(pid).startsWith(ours);
    const before = await snapshot(mine);
    if (before.procs.size)
      console.log(`note: processes of sandbox uids not ours, before: ${procList(before)} (other sandboxes on this host)`);
    const done: number[] = [];
    const createMs = await pool(count, concurrency, async () => {
      sandboxes.push(await Sandbox.create({}, t.client));
      done.push(performance.now());
      if (sandboxes.length % 25 === 0) progress(`${BENCH}: created ${sandboxes.length}/${count}`);
    });
    progressDone();
    await sleep(1000);
    const after = await snapshot(mine);
    const live = (await t.daemon.engine.listSandboxes()).filter((s) => s.status === 'running').length;
    const k = Math.min(100, Math.floor(done.length / 2));
    const rate = (from: number, to: number): number =>
      (to - from) / (((done[to - 1] ?? 0) - (done[from - 1] ?? done[0] ?? 0)) / 1000);
    console.log(
      `created ${sandboxes.length} in ${fmt(createMs / 1000)} s (${fmt(sandboxes.length / (createMs / 1000), 1)}/s; first ${k}: ${fmt(rate(1, k), 1)}/s, last ${k}: ${fmt(rate(done.length - k, done.length), 1)}/s); running: ${live}`,
    );
    const sb = perUnit(before, after, count);
    const loadedCreate = await createP50(t.client, 15);
    console.log(
      `create latency p50 (sequential, n=15): ${fmt(idleCreate)} ms with no sandbox live, ${fmt(loadedCreate)} ms with ${count} idle sandboxes live`,
    );
    console.log(
      `daemon RSS ${fmt(before.rss / MiB, 1)} → ${fmt(after.rss / MiB, 1)} MiB (+${fmt((after.rss - before.rss) / MiB, 1)} MiB for ${count} sandboxes)`,
    );
    printRow('per idle sandbox:     ', sb);
    printRow('per bare idle process:', base);
    console.log(
      `ratio sandbox/bare process: MemAvailable ${fmt(sb.available / base.available)}x  PSS ${fmt(sb.pss / base.pss)}x`,
    );

    const destroyMs = await pool(sandboxes.length, concurrency, async (i) => {
      await sandboxes[i]?.destroy();
    });
    console.log(`destroyed ${sandboxes.length} in ${fmt(destroyMs / 1000)} s`);
    sandboxes.length = 0;
    // leftovers() lists every process of the sandbox uid on the host; keep only ours (a process
    // of ours keeps its cgroup alive, so it is still found under our cgroup root).
    const left = (await leftovers(t)).filter((l) => {
      const pid = /^process (\d+)/.exec(l)?.[1];
      return !pid || mine(Number(pid));
    });
    const remaining = (await t.daemon.engine.listSandboxes()).length;
    console.log(
      left.length || remaining
        ? `LEFTOVERS: ${remaining} sandbox records; ${left.slice(0, 10).join('; ')}`
        : 'after destroy: no sandboxes, processes, mounts, cgroups or state dirs left',
    );

    const targets: Target[] = [
      { bench: BENCH, name: 'MemAvailable drop per idle sandbox', value: sb.available / MiB, limit: 2, op: '<=', unit: ' MiB' },
      { bench: BENCH, name: 'PSS per idle sandbox', value: sb.pss / MiB, limit: 2, op: '<=', unit: ' MiB' },
      { bench: BENCH, name: 'nothing left after destroying all', value: left.length + remaining, limit: 0, op: '<=', unit: '' },
    ];
    report(targets);
    return targets;
  } finally {
    await pool(sandboxes.length, concurrency, async (i) => {
      await sandboxes[i]?.destroy().catch(() => undefined);
    });
    await t.close();
    removeTestDirs(t);
  }
}

runIfMain(import.meta.url, main);
