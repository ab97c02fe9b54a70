/**
 * Shared benchmark machinery: timing, percentiles, interleaved sampling, bounded concurrency,
 * bare process spawns (the baselines), /proc readers, and PASS/FAIL targets.
 *
 * Benchmarks are not tests: they print figures and a verdict per target, and always exit 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Agent, request } from 'node:http';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { PACKAGE_ROOT } from '../src/util/paths.js';
import { Sandbox } from '@realm/sdk';
import type { DriverName } from '../src/drivers/driver.js';
import { removeTestDirs, startTestDaemon, type TestDaemon } from '../test/helpers/daemon.js';

/** The interpreter a one-shot python run uses (not the pyenv shim on PATH). */
export const PYTHON = '/usr/bin/python3';

// ---------------- statistics ----------------

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of already sorted samples (p in 0..100). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN;
}

export function summarize(samples: readonly number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  const sum = s.reduce((a, b) => a + b, 0);
  return {
    n: s.length,
    min: s[0] ?? NaN,
    mean: s.length ? sum / s.length : NaN,
    p50: percentile(s, 50),
    p90: percentile(s, 90),
    p99: percentile(s, 99),
    max: s[s.length - 1] ?? NaN,
  };
}

// ---------------- timing ----------------

/** One request on `agent`'s connection to the daemon's unix socket; the time to the whole answer. */
export function socketRequest(
  socketPath: string,
  agent: Agent,
  method: string,
  path: string,
  body: string | Buffer,
  type = 'application/json',
): Promise<{ ms: number; status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      `http://localhost${path}`,
      { method, socketPath, agent, headers: { 'content-type': type, 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.once('error', reject);
        res.once('end', () => resolve({ ms: performance.now() - t0, status: res.statusCode ?? 0, text }));
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** Post a python `print(1)` run to the daemon's unix socket (`path`: /v1/runs or /v1/runs/stream) on `agent`'s connection; the time to the whole answer. */
export function postRun(
  socketPath: string,
  agent: Agent,
  path: string,
  args: string[] = [],
): Promise<{ ms: number; status: number; text: string }> {
  const body = { language: 'python', code: 'print(1)', ...(args.length ? { args } : {}) };
  return socketRequest(socketPath, agent, 'POST', path, JSON.stringify(body));
}

/** Wall-clock milliseconds taken by `fn` (monotonic clock). */
export async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface Subject {
  name: string;
  /** One timed sample, in ms; `round` is negative during warm-up. */
  sample: (round: number) => Promise<number>;
  /** Untimed work after each sample (clean-up), so it does not leak into the next sample. */
  after?: () => Promise<void>;
}

/**
 * Sample every subject `n` times, interleaved so that machine noise falls on all of them alike:
 * round i runs each subject once, in an order that rotates every round (no subject always first).
 * `warmup` rounds run first and are thrown away.
 */
export async function interleave(
  subjects: readonly Subject[],
  n: number,
  warmup: number,
  onProgress?: (round: number) => void,
): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
  for (let round = -warmup; round < n; round++) {
    const k = ((round % subjects.length) + subjects.length) % subjects.length;
    const order = [...subjects.slice(k), ...subjects.slice(0, k)];
    for (const s of order) {
      const ms = await s.sample(round);
      await s.after?.();
      if (round >= 0) out.get(s.name)?.push(ms);
    }
    if (round >= 0) onProgress?.(round + 1);
  }
  return out;
}

/** Run `total` tasks with at most `concurrency` at a time; wall-clock ms for all of them. */
export async function pool(total: number, concurrency: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    while (next < total) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  return performance.now() - t0;
}

// ---------------- baselines: bare processes ----------------

export interface BareResult {
  ms: number;
  code: number | null;
  stdout: string;
}

/**
 * Spawn a program directly (no sandbox) and time it from spawn() to its exit with its output
 * collected (the `close` event: exited and stdout/stderr drained), like a one-shot run returns.
 */
export function spawnTimed(file: string, args: readonly string[]): Promise<BareResult> {
  return new Promise((resolveResult, reject) => {
    const t0 = performance.now();
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/bin:/bin' }, cwd: '/' });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.resume();
    child.once('error', reject);
    child.once('close', (code) => resolveResult({ ms: performance.now() - t0, code, stdout }));
  });
}

/** Bare `/usr/bin/python3 -c 'print(1)'`; throws unless it printed 1. */
export async function barePython(): Promise<number> {
  const r = await spawnTimed(PYTHON, ['-c', 'print(1)']);
  if (r.code !== 0 || r.stdout !== '1\n')
    throw new Error(`bare python failed: exit ${r.code} stdout ${JSON.stringify(r.stdout)}`);
  return r.ms;
}

// ---------------- /proc ----------------

/** A field of /proc/meminfo, in bytes. */
export function meminfo(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
  if (!m?.[1]) throw new Error(`no ${field} in /proc/meminfo`);
  return Number(m[1]) * 1024;
}

/** A `kB` field of /proc/PID/status (VmRSS, VmHWM...), in bytes; 0 when the process is gone. */
export function procStatus(pid: number | 'self', field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

export interface ProcInfo {
  pid: number;
  name: string;
  uid: number;
}

/** Every process on the host with its name and real uid (processes that exit while read are skipped). */
export function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      out.push({
        pid: Number(p),
        name: /^Name:\s+(.*)$/m.exec(status)?.[1] ?? '?',
        uid: Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? -1),
      });
    } catch {
      /* exited while we looked */
    }
  }
  return out;
}

/** Fields of /proc/PID/smaps_rollup (Rss, Pss, Pss_Anon, ...), in bytes; empty when gone. */
export function smapsRollup(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8').split('\n')) {
      const m = /^(\w+):\s+(\d+) kB/.exec(line);
      if (m?.[1] && m[2]) out[m[1]] = Number(m[2]) * 1024;
    }
  } catch {
    /* gone */
  }
  return out;
}

/** Clock ticks per second of /proc/PID/stat and /proc/stat (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

export interface CpuSnapshot {
  /** This process (daemon and client share it): user+system ms. */
  selfMs: number;
  /** Waited-for children (helpers, bwrap with its init, python...): user+system ms. */
  childrenMs: number;
  /** Whole host, all CPUs, non-idle ms (includes kernel workers and any other load). */
  hostBusyMs: number;
  /** For event loop utilization (share of wall time the main thread was busy). */
  elu: ReturnType<typeof performance.eventLoopUtilization>;
}

export function cpuSnapshot(): CpuSnapshot {
  const u = process.cpuUsage();
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: field 3 (state) is f[0]; cutime and cstime are fields 16 and 17.
  const children = (Number(f[13]) + Number(f[14])) * (1000 / USER_HZ);
  const cpu = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is all but idle and iowait.
  const busy = cpu.slice(0, 8).reduce((a, b, i) => (i === 3 || i === 4 ? a : a + b), 0) * (1000 / USER_HZ);
  return { selfMs: (u.user + u.system) / 1000, childrenMs: children, hostBusyMs: busy, elu: performance.eventLoopUtilization() };
}

export interface CpuUse {
  selfMs: number;
  childrenMs: number;
  hostBusyMs: number;
  /** 0..1 */
  eventLoop: number;
}

export function cpuSince(a: CpuSnapshot, b: CpuSnapshot = cpuSnapshot()): CpuUse {
  return {
    selfMs: b.selfMs - a.selfMs,
    childrenMs: b.childrenMs - a.childrenMs,
    hostBusyMs: b.hostBusyMs - a.hostBusyMs,
    eventLoop: performance.eventLoopUtilization(b.elu, a.elu).utilization,
  };
}

export function addCpu(a: CpuUse, b: CpuUse): CpuUse {
  return {
    selfMs: a.selfMs + b.selfMs,
    childrenMs: a.childrenMs + b.childrenMs,
    hostBusyMs: a.hostBusyMs + b.hostBusyMs,
    eventLoop: a.eventLoop + b.eventLoop,
  };
}

// ---------------- targets and output ----------------

export interface Target {
  bench: string;
  name: string;
  value: number;
  limit: number;
  /** `<=`: value must not exceed limit; `>=`: value must reach it. */
  op: '<=' | '>=';
  unit: string;
}

export function passed(t: Target): boolean {
  return Number.isFinite(t.value) && (t.op === '<=' ? t.value <= t.limit : t.value >= t.limit);
}

export function fmt(v: number, digits = 2): string {
  return Number.isFinite(v) ? v.toFixed(digits) : String(v);
}

export const MiB = 1024 ** 2;

/** Print one `PASS`/`FAIL` line per target. */
export function report(targets: readonly Target[]): void {
  for (const t of targets) {
    const v = `${fmt(t.value)}${t.unit}`;
    console.log(`${passed(t) ? 'PASS' : 'FAIL'}  ${t.bench}: ${t.name} = ${v} (target ${t.op} ${fmt(t.limit)}${t.unit})`);
  }
}

/** Start a test daemon, measure with it, print each target's verdict, and close it whatever happens. */
export async function measureWithDaemon(
  opts: Parameters<typeof startTestDaemon>[0],
  measure: (t: TestDaemon) => Promise<Target[]>,
): Promise<Target[]> {
  const t = await startTestDaemon(opts);
  try {
    const targets = await measure(t);
    report(targets);
    return targets;
  } finally {
    await t.close();
    removeTestDirs(t);
  }
}

export interface DaemonProcess {
  child: ChildProcess;
  /** The daemon's TCP address (it wants a token there). */
  url: string;
  /** Its unix socket: the CLI's default way in; the daemon knows the caller by its uid, no token. */
  socket: string;
  /** The app gateway's URL, when `args` turned it on. */
  gateway?: string;
  /** SIGTERM, wait for the exit, remove its data dir and cgroups. */
  stop: () => Promise<void>;
}

/**
 * A daemon in a process of its own, started as users start it (`realm serve`), on a free loopback
 * port and a unix socket in a fresh data dir, with its own cgroup root. `args` go to `serve`.
 */
export async function spawnDaemon(name: string, args: readonly string[] = []): Promise<DaemonProcess> {
  const dataDir = mkdtempSync(join(tmpdir(), `realm-bench-${name}-`));
  const cgroupRoot = `realm-bench-${name}-${process.pid}`;
  const socket = join(dataDir, 'api.sock');
  const main = join(PACKAGE_ROOT, 'dist', 'src', 'cli', 'main.js');
  // REALM_BENCH_DAEMON_NODE_ARGS: node flags for the daemon alone, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`.
  const nodeArgs = process.env.REALM_BENCH_DAEMON_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(
    process.execPath,
    // The gateway is off unless `args` ask for it (`--gateway 127.0.0.1:0`): never 8080, a real daemon's.
    [
      ...nodeArgs,
      main,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--gateway',
      'off',
      '--socket',
      socket,
      '--data-dir',
      dataDir,
      ...args,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, REALM_CGROUP_ROOT: cgroupRoot },
    },
  );
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    }
    removeTestDirs({ dataDir, cgroupRoot });
  };
  try {
    // With a gateway asked for, its line follows the listening one: wait for both.
    const wantGateway = args.includes('--gateway') && args[args.lastIndexOf('--gateway') + 1] !== 'off';
    let gateway: string | undefined;
    const url = await new Promise<string>((resolveUrl, reject) => {
      let err = '';
      child.stderr?.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(err);
        gateway = /app gateway on (http:\/\/\S+)/.exec(err)?.[1];
        if (m?.[1] && (!wantGateway || gateway)) resolveUrl(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`the daemon exited (${code}): ${err}`)));
    });
    child.stderr?.resume();
    return { child, url, socket, stop, ...(gateway ? { gateway } : {}) };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** One create + first exec of `true` on `driver`, timed; the destroy is untimed. */
export function createExecSubject(t: TestDaemon, driver: DriverName): Subject {
  let sb: Sandbox | undefined;
  return {
    name: driver,
    sample: async () => {
      const t0 = performance.now();
      sb = await Sandbox.create({ driver }, t.client);
      const r = await sb.exec(['true']);
      const ms = performance.now() - t0;
      if (r.exitCode !== 0) throw new Error(`${driver}: exec true failed: ${JSON.stringify(r)}`);
      return ms;
    },
    after: async () => {
      await sb?.destroy();
      sb = undefined;
    },
  };
}

/** A row per series with its percentiles in ms. */
export function printLatencies(rows: readonly [string, Summary][]): void {
  const w = Math.max(...rows.map(([n]) => n.length), 6);
  console.log(`${'series'.padEnd(w)}  ${['n', 'min', 'p50', 'p90', 'p99', 'max', 'mean'].map((h) => h.padStart(8)).join('')}`);
  for (const [name, s] of rows) {
    console.log(
      `${name.padEnd(w)}  ${String(s.n).padStart(8)}${[s.min, s.p50, s.p90, s.p99, s.max, s.mean].map((v) => fmt(v).padStart(8)).join('')}`,
    );
  }
}

/** Progress on stderr, so stdout keeps only the figures. */
export function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r${text}\x1b[K`);
}

export function progressDone(): void {
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
}

/** True when the module at `url` is the program node was started with. */
export function isMain(url: string): boolean {
  return !!process.argv[1] && resolve(process.argv[1]) === fileURLToPath(url);
}

/**
 * Run a benchmark's main when executed directly. It exits 0 whatever happened: an error is
 * printed and reported as a FAIL line, not as a crashed process.
 */
export function runIfMain(url: string, main: () => Promise<unknown>): void {
  if (!isMain(url)) return;
  main()
    .catch((e: unknown) => {
      console.error(e);
      console.log('FAIL  benchmark did not complete');
    })
    .finally(() => {
      process.exitCode = 0;
    });
}
