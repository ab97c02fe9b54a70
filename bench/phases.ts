/**
 * Diagnostic, not a target: where the time of a create, a first exec, a destroy and a one-shot
 * python run goes inside the daemon. It instruments a running daemon from the outside (no change
 * to src/): engine, driver and store methods are wrapped, and so are `child_process.spawn` and
 * the synchronous `fs` calls (through `syncBuiltinESMExports`, which re-points the modules' live
 * imports). Operations run one at a time; each phase prints its median and p90 over N.
 *
 * Then, outside the daemon, bubblewrap alone with variants of realm's arguments, to split the
 * sandbox set-up itself.
 *
 * Labels: `A > B` is B inside A; `· fs` is the synchronous fs calls made directly in a phase;
 * `spawn() X` is the synchronous cost of forking/exec'ing helper mode X on the event loop;
 * `X spawn→exit` runs from that call to the child's exit.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire, syncBuiltinESMExports } from 'node:module';
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Client, Sandbox, run } from '@realm/sdk';
import { probeCgroups } from '../src/drivers/shared/cgroups.js';
import { HOST_ETC } from '../src/drivers/shared/etc.js';
import { A_SANDBOX_UID, removeTestDirs, startTestDaemon } from '../test/helpers/daemon.js';
import { fmt, interleave, progress, progressDone, runIfMain, summarize, timeMs } from './lib.js';

const require = createRequire(import.meta.url);
const als = new AsyncLocalStorage<string>();

/** Per-iteration accumulators: label → ms, in order of first appearance. */
let current = new Map<string, number>();
const order: string[] = [];
function add(label: string, ms: number): void {
  if (!order.includes(label)) order.push(label);
  current.set(label, (current.get(label) ?? 0) + ms);
}
const within = (label: string): string => {
  const parent = als.getStore();
  return parent ? `${parent} > ${label}` : label;
};

type AnyFn = (...args: unknown[]) => unknown;

/** Wrap `obj[key]` so each call is a span named `label` (nested under the caller's span). */
function wrap(obj: object, key: string, label: string): void {
  const target = obj as Record<string, unknown>;
  const orig = target[key] as AnyFn;
  target[key] = function (this: unknown, ...args: unknown[]): unknown {
    const name = within(label);
    const t0 = performance.now();
    return als.run(name, () => {
      const r = orig.apply(this, args);
      if (r instanceof Promise) return r.finally(() => add(name, performance.now() - t0));
      add(name, performance.now() - t0);
      return r;
    });
  };
}

const FS_CALLS = [
  'mkdirSync',
  'writeFileSync',
  'readFileSync',
  'readdirSync',
  'rmdirSync',
  'rmSync',
  'chownSync',
  'chmodSync',
  'openSync',
  'closeSync',
  'existsSync',
  'statSync',
  'lstatSync',
  'writeSync',
  'fchownSync',
];

/** Time every synchronous fs call and every spawn, attributed to the enclosing span. */
function instrumentBuiltins(): void {
  const fs = require('node:fs') as Record<string, unknown>;
  for (const k of FS_CALLS) {
    const orig = fs[k] as AnyFn;
    fs[k] = function (this: unknown, ...args: unknown[]): unknown {
      const parent = als.getStore();
      if (!parent) return orig.apply(this, args);
      const t0 = performance.now();
      try {
        return orig.apply(this, args);
      } finally {
        add(`${parent} · fs`, performance.now() - t0);
      }
    };
  }
  const cp = require('node:child_process') as Record<string, unknown>;
  const origSpawn = cp.spawn as (file: string, args: string[], opts: object) => ChildProcess;
  cp.spawn = function (this: unknown, file: string, args: string[], opts: object): ChildProcess {
    const parent = als.getStore();
    const what = basename(file) === 'realm-helper' ? (args[0] ?? '?') : basename(file);
    const t0 = performance.now();
    const child = origSpawn.call(this, file, args, opts);
    if (parent) {
      add(`${parent} · spawn() ${what}`, performance.now() - t0);
      const it = current;
      child.once('exit', () => {
        if (it === current) add(`${parent} · ${what} spawn→exit`, performance.now() - t0);
      });
    }
    return child;
  };
  const timers = require('node:timers/promises') as Record<string, unknown>;
  const origSleep = timers.setTimeout as (ms?: number, value?: unknown, opts?: object) => Promise<unknown>;
  timers.setTimeout = function (this: unknown, ms?: number, value?: unknown, opts?: object): Promise<unknown> {
    const parent = als.getStore();
    const t0 = performance.now();
    const p = origSleep.call(this, ms, value, opts);
    if (!parent) return p;
    add(`${parent} · sleep() calls`, 1);
    return p.finally(() => add(`${parent} · sleep() ms`, performance.now() - t0));
  };
  syncBuiltinESMExports();
}

/** `  label  p50  p90` */
function p50p90(label: string, xs: readonly number[]): string {
  const s = summarize(xs);
  return `  ${label}  ${fmt(s.p50).padStart(7)}  ${fmt(s.p90).padStart(7)}`;
}

function printPhases(title: string, samples: Map<string, number[]>): void {
  console.log(`-- ${title} (ms over ${[...samples.values()][0]?.length ?? 0} samples; p50 / p90)`);
  const w = Math.max(...order.filter((l) => samples.has(l)).map((l) => l.length), 10);
  for (const label of order) {
    const xs = samples.get(label);
    if (!xs) continue;
    console.log(p50p90(label.padEnd(w), xs));
  }
}

/** Run `op` n times (after warm-up), one at a time; per label, its total in each iteration. */
async function phases(n: number, warmup: number, op: () => Promise<void>, name: string): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (let i = -warmup; i < n; i++) {
    current = new Map();
    const it = current;
    await op();
    await new Promise((r) => setTimeout(r, 5)); // let late exit events land in this iteration
    current = new Map();
    if (i < 0) continue;
    for (const [k, v] of it) out.set(k, [...(out.get(k) ?? []), v]);
    progress(`phases ${name}: ${i + 1}/${n}`);
  }
  progressDone();
  return out;
}

// ---------------- bubblewrap alone ----------------

function bwrapVariants(): [string, string[]][] {
  const flags = [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    '--disable-userns',
    '--uid',
    '1000',
    '--gid',
    '1000',
    '--hostname',
    'sandbox',
    '--cap-drop',
    'ALL',
    '--as-pid-1',
    '--new-session',
  ];
  const root = [
    '--ro-bind',
    '/usr',
    '/usr',
    '--symlink',
    'usr/bin',
    '/bin',
    '--symlink',
    'usr/sbin',
    '/sbin',
    '--symlink',
    'usr/lib',
    '/lib',
    '--symlink',
    'usr/lib64',
    '/lib64',
    '--dir',
    '/etc',
  ];
  const etc = HOST_ETC.flatMap((e) => ['--ro-bind-try', `/etc/${e}`, `/etc/${e}`]);
  const dirs = ['--dir', '/var', '--dir', '/var/tmp', '--dir', '/run', '--dir', '/opt', '--dir', '/srv'];
  const tail = [
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    '--size',
    '268435456',
    '--perms',
    '1777',
    '--tmpfs',
    '/tmp',
    '--size',
    '268435456',
    '--perms',
    '1777',
    '--tmpfs',
    '/dev/shm',
    '--remount-ro',
    '/',
    '--',
    '/usr/bin/true',
  ];
  return [
    [
      'bwrap minimal (user+pid ns, /usr)',
      [
        '--unshare-user',
        '--unshare-pid',
        '--as-pid-1',
        '--ro-bind',
        '/usr',
        '/usr',
        '--symlink',
        'usr/lib',
        '/lib',
        '--symlink',
        'usr/lib64',
        '/lib64',
        '--',
        '/usr/bin/true',
      ],
    ],
    ['bwrap realm flags, no /etc binds, no netns', [...flags, ...root, ...dirs, ...tail]],
    ['bwrap realm flags, no /etc binds, + netns', [...flags, '--unshare-net', ...root, ...dirs, ...tail]],
    ['bwrap realm flags + 27 /etc binds, no netns', [...flags, ...root, ...etc, ...dirs, ...tail]],
    ['bwrap as realm (27 /etc binds + netns)', [...flags, '--unshare-net', ...root, ...etc, ...dirs, ...tail]],
  ];
}

function exitTime(file: string, args: string[], uid?: number): Promise<number> {
  return timeMs(
    () =>
      new Promise<void>((resolve, reject) => {
        const c = spawn(file, args, { stdio: 'ignore', env: {}, cwd: '/', ...(uid !== undefined ? { uid, gid: uid } : {}) });
        c.once('error', reject);
        c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${file} exited ${code}`))));
      }),
  );
}

async function bwrapAlone(n: number): Promise<void> {
  const res = await interleave(
    [
      { name: 'bare /usr/bin/true', sample: () => exitTime('/usr/bin/true', []) },
      ...bwrapVariants().map(([name, args]) => ({ name, sample: () => exitTime('/usr/bin/bwrap', args, A_SANDBOX_UID) })),
    ],
    n,
    5,
  );
  console.log(`-- bubblewrap alone, spawn→exit of /usr/bin/true as uid ${A_SANDBOX_UID} (ms over ${n}, interleaved; p50 / p90)`);
  for (const [k, xs] of res) console.log(p50p90(k.padEnd(46), xs));
}

// ---------------- cgroup v1 task migration ----------------

/**
 * Moving a task between cgroups takes the kernel's global cgroup_threadgroup_rwsem for writing;
 * when no migration happened for a while that waits for an RCU grace period. Shown two ways:
 * the cost of one migration after an idle gap, and a daemon create with and without a
 * migration (of an unrelated process) just before it.
 */
async function migration(n: number, t: { client: Client }): Promise<void> {
  const probe = probeCgroups();
  if (!probe.ok) return;
  const root = `realm-bench-migrate-${process.pid}`;
  const a = probe.manager.create(`${root}/a`);
  const b = probe.manager.create(`${root}/b`);
  const kid = spawn('/usr/bin/sleep', ['1000'], { stdio: 'ignore' });
  let flip = false;
  const migrate = (): number => {
    flip = !flip;
    const t0 = performance.now();
    writeFileSync((flip ? a : b).procsFiles()[0] ?? '', String(kid.pid));
    return performance.now() - t0;
  };
  try {
    await sleep(50);
    console.log(
      `-- cgroup v${probe.manager.version}: one task migration (write to cgroup.procs) after an idle gap (ms over ${n}; p50 / p90)`,
    );
    for (const gap of [0, 10, 25, 50, 100]) {
      const xs: number[] = [];
      for (let i = -2; i < n; i++) {
        await sleep(gap);
        const ms = migrate();
        if (i >= 0) xs.push(ms);
      }
      console.log(p50p90(`gap ${String(gap).padStart(3)} ms`.padEnd(46), xs));
    }
    let sb: Sandbox | undefined;
    const create = (warm: boolean) => async (): Promise<number> => {
      if (warm) migrate();
      return timeMs(async () => (sb = await Sandbox.create({}, t.client)));
    };
    const after = async (): Promise<void> => {
      await sb?.destroy();
      await sleep(100); // so that the next sample starts with no recent migration
    };
    const res = await interleave(
      [
        { name: 'Sandbox.create, no migration in the last 100 ms', sample: create(false), after },
        { name: 'Sandbox.create right after a migration', sample: create(true), after },
      ],
      n,
      3,
      (i) => progress(`phases migration: ${i}/${n}`),
    );
    progressDone();
    console.log(`-- daemon create with and without a cgroup migration just before (ms over ${n}, interleaved; p50 / p90)`);
    for (const [k, xs] of res) {
      console.log(p50p90(k.padEnd(46), xs));
    }
  } finally {
    kid.kill('SIGKILL');
    await new Promise((r) => (kid.exitCode !== null || kid.signalCode !== null ? r(undefined) : kid.once('exit', r)));
    for (const cg of [a, b]) cg.remove();
    probe.manager.open(root).remove();
  }
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<void> {
  const n = opts.n ?? 50;
  const warmup = opts.warmup ?? 5;
  console.log(`== phases: where the time goes inside the daemon (diagnostic; n=${n}, one operation at a time)`);
  instrumentBuiltins();
  const t = await startTestDaemon();
  try {
    const engine = t.daemon.engine as unknown as Record<string, unknown>;
    const driver = (engine.drivers as { byName: Map<string, object> }).byName.get('namespace');
    const store = engine.store as object;
    if (!driver) throw new Error('no namespace driver');
    for (const k of ['createSandbox', 'exec', 'destroySandbox', 'run']) wrap(engine, k, `engine.${k}`);
    for (const k of ['create', 'start', 'exec', 'writeFiles', 'destroy']) wrap(driver, k, `driver.${k}`);
    for (const k of ['putSandbox', 'getSandbox', 'deleteSandbox', 'listSandboxes']) wrap(store, k, `store.${k}`);

    let sb: Sandbox | undefined;
    const create = await phases(
      n,
      warmup,
      async () => {
        add('client: Sandbox.create', await timeMs(async () => (sb = await Sandbox.create({}, t.client))));
        add('client: exec true', await timeMs(() => sb?.exec(['true']) ?? Promise.resolve()));
        add('client: destroy', await timeMs(() => sb?.destroy() ?? Promise.resolve()));
      },
      'create/exec/destroy',
    );
    printPhases('create, first exec, destroy', create);
    order.length = 0;

    const py = await phases(
      n,
      warmup,
      async () => {
        add('client: run python print(1)', await timeMs(() => run({ language: 'python', code: 'print(1)' }, t.client)));
        add('one-shot clean-up after the answer', await timeMs(() => t.daemon.engine.settled()));
      },
      'run',
    );
    printPhases('one-shot python run', py);

    await migration(Math.max(10, Math.round(n / 2)), t);
  } finally {
    await t.close();
    removeTestDirs(t);
  }
  await bwrapAlone(n);
}

runIfMain(import.meta.url, main);
