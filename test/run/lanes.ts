/**
 * `npm test`'s runner (scripts/test.sh calls it after the lint): every test file, and the files
 * directly in test/hostile/ again on the gvisor and microvm drivers, as jobs shared by a few
 * lanes that run one file each at a time.
 *
 * Most files wait more than they compute (etcd leases, daemons starting, guests booting on one
 * vCPU), so two lanes on two cores finish in a little over half the time of one. The files are
 * independent: each starts its own daemons with their own data dirs, cgroup roots and ports, and
 * checks only what those left behind; a lane's sandboxes take host uids of their own
 * (REALM_TEST_LANE, test/helpers/daemon.ts), so per-user kernel limits are never shared either.
 * Files listed in LAST wait for every other job (test/unit/openapi.test.ts reads what the e2e
 * files recorded).
 *
 * Jobs are handed out longest first, by the durations measured in earlier runs
 * (test/durations.json; a file not listed counts as DEFAULT_S). Each file's output is printed
 * whole when it ends, so the lanes' reports do not interleave; the totals come at the end, with
 * the slowest files. The durations measured are written to .realm-test/durations.json: copy it
 * over test/durations.json when files were added or got slower.
 *
 * Environment: REALM_TEST_LANES (default: 2, or 1 on a one-core machine), REALM_TEST_FILES (a
 * space-separated list of test/…/*.test.ts to run instead of all; with no re-runs),
 * REALM_TEST_FILE_TIMEOUT (seconds a file may run before it is stopped, default 1200).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The drivers the hostile files run on again (the first run is on the default, namespace). */
const RERUN_DRIVERS = ['gvisor', 'microvm'] as const;
/** Files that run after every other (they read what the others recorded). */
const LAST = ['test/unit/openapi.test.ts'];
/** Seconds counted for a file test/durations.json does not list. */
const DEFAULT_S = 20;
/** A test that runs longer fails (node's --test-timeout); a file that runs longer is stopped, with all it started. */
const TEST_TIMEOUT_S = 600;
const FILE_TIMEOUT_S = Number(process.env.REALM_TEST_FILE_TIMEOUT ?? 1200);
/** Lines of a failed file's failure list printed again in the summary. */
const FAILURE_LINES = 60;
const COUNTS = ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'] as const;

interface Job {
  /** `main:test/x.test.ts`, or `gvisor:…` / `microvm:…` for a re-run. */
  key: string;
  source: string;
  driver?: string;
  expected: number;
}

interface Done {
  job: Job;
  lane: number;
  seconds: number;
  ok: boolean;
  counts: Record<(typeof COUNTS)[number], number>;
  /** A failed file's own list of its failures (the spec reporter's last section), to print again at the end. */
  failures?: string;
}

/** test/**\/*.test.ts, sorted (sources, not dist: a compiled file whose source is gone is not run). */
function testSources(dir: string, depth = Infinity): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`;
    if (e.isDirectory() && depth > 0) out.push(...testSources(rel, depth - 1));
    else if (e.isFile() && e.name.endsWith('.test.ts')) out.push(rel);
  }
  return out.sort();
}

function plan(): { jobs: Job[]; last: Job[] } {
  const known = readDurations(join(ROOT, 'test', 'durations.json'));
  const job = (source: string, driver?: string): Job => {
    const key = `${driver ?? 'main'}:${source}`;
    return { key, source, driver, expected: known[key] ?? DEFAULT_S };
  };
  const only = process.env.REALM_TEST_FILES?.split(/\s+/).filter(Boolean);
  const main = (only ?? testSources('test')).map((s) => job(s));
  const reruns = only ? [] : RERUN_DRIVERS.flatMap((d) => testSources('test/hostile', 0).map((s) => job(s, d)));
  const all = [...main, ...reruns];
  const last = all.filter((j) => LAST.includes(j.source));
  const jobs = all.filter((j) => !LAST.includes(j.source)).sort((a, b) => b.expected - a.expected);
  return { jobs, last };
}

/** Whether a file boots microVMs (emulated where KVM cannot boot guests): its name says so, or it re-runs on that driver. */
function runsGuests(job: Job): boolean {
  return job.driver === 'microvm' || /microvm|jobs-tied/.test(job.source);
}

function readDurations(path: string): Record<string, number> {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, number>;
  } catch {
    return {};
  }
}

/** The files running now: each in a process group of its own, stopped with us (Ctrl-C, CI cancelling). */
const running = new Set<ChildProcess>();
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.once(signal, () => {
    for (const c of running)
      try {
        process.kill(-(c.pid ?? 0), 'SIGTERM');
      } catch {
        /* gone */
      }
    process.exit(130);
  });

/** Run one file with node's test runner (spec report); its output is printed whole at the end. */
function run(job: Job, lane: number): Promise<Done> {
  const compiled = join(ROOT, 'dist', job.source.replace(/\.ts$/, '.js'));
  const env: NodeJS.ProcessEnv = { ...process.env, REALM_TEST_LANE: String(lane) };
  if (job.driver) env.REALM_TEST_DRIVER = job.driver;
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_S * 1000}`, '--test-reporter=spec', compiled],
      // A group of its own: a file that hangs is stopped with everything it started.
      { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    running.add(child);
    let hung = false;
    const watchdog = setTimeout(() => {
      hung = true;
      const group = (signal: NodeJS.Signals): void => {
        try {
          process.kill(-(child.pid ?? 0), signal);
        } catch {
          /* gone */
        }
      };
      group('SIGTERM');
      setTimeout(() => group('SIGKILL'), 10_000).unref();
    }, FILE_TIMEOUT_S * 1000);
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    child.stderr.on('data', (d: Buffer) => chunks.push(d));
    child.once('close', (code, signal) => {
      clearTimeout(watchdog);
      running.delete(child);
      const seconds = (performance.now() - started) / 1000;
      const counts = Object.fromEntries(COUNTS.map((c) => [c, 0])) as Done['counts'];
      const kept: string[] = [];
      for (const line of Buffer.concat(chunks).toString('utf8').split('\n')) {
        const m = /^ℹ (\w+) (\d+(?:\.\d+)?)$/.exec(line);
        if (m && (COUNTS as readonly string[]).includes(m[1] ?? '')) counts[m[1] as (typeof COUNTS)[number]] += Number(m[2]);
        else if (!(m && m[1] === 'duration_ms')) kept.push(line);
      }
      const ok = code === 0;
      const what = job.driver ? `${job.source} on ${job.driver}` : job.source;
      const end = ok ? '' : ` — FAILED (${hung ? `stopped after ${FILE_TIMEOUT_S} s` : (signal ?? `exit ${code}`)})`;
      process.stdout.write(`# ${what} (lane ${lane}): ${seconds.toFixed(1)} s${end}\n${kept.join('\n').trimEnd()}\n`);
      resolve({ job, lane, seconds, ok, counts, ...(ok ? {} : { failures: failureSection(kept) }) });
    });
  });
}

async function main(): Promise<number> {
  const lanes = Number(process.env.REALM_TEST_LANES ?? Math.min(2, availableParallelism()));
  if (!Number.isInteger(lanes) || lanes < 1 || lanes > 16)
    throw new Error(`REALM_TEST_LANES must be 1…16, not ${process.env.REALM_TEST_LANES}`);
  const { jobs, last } = plan();
  // What the e2e files record is read by openapi.test.ts after them: nothing from an earlier run.
  if (!process.env.REALM_TEST_FILES) rmSync(join(ROOT, '.realm-test', 'openapi-hits'), { recursive: true, force: true });
  const started = performance.now();
  const done: Done[] = [];
  const busy = new Array<number>(lanes).fill(0);
  const queue = [...jobs];
  // One file with microVMs at a time: two emulated guests at once on two cores starve each other
  // (a run inside one once printed nothing within its 80 s that way). The other lane takes the
  // next file without them meanwhile, or waits for the one running.
  let guestsRunning = false;
  let guestsDone: Promise<void> = Promise.resolve();
  const next = async (): Promise<Job | undefined> => {
    for (;;) {
      const i = queue.findIndex((j) => !guestsRunning || !runsGuests(j));
      if (i >= 0) return queue.splice(i, 1)[0];
      if (!queue.length) return undefined;
      await guestsDone;
    }
  };
  await Promise.all(
    busy.map(async (_, lane) => {
      for (let job = await next(); job; job = await next()) {
        let release = (): void => undefined;
        if (runsGuests(job)) {
          guestsRunning = true;
          guestsDone = new Promise((r) => (release = r));
        }
        const d = await run(job, lane);
        if (runsGuests(job)) {
          guestsRunning = false;
          release();
        }
        busy[lane] = (busy[lane] ?? 0) + d.seconds;
        done.push(d);
      }
    }),
  );
  for (const job of last) done.push(await run(job, 0));
  const wall = (performance.now() - started) / 1000;

  const total = Object.fromEntries(COUNTS.map((c) => [c, done.reduce((n, d) => n + d.counts[c], 0)]));
  console.log(
    `\n# ${done.length} files in ${lanes} lane(s): ${wall.toFixed(0)} s (lanes busy ${busy.map((b) => `${b.toFixed(0)} s`).join(', ')})`,
  );
  console.log('# slowest:');
  for (const d of [...done].sort((a, b) => b.seconds - a.seconds).slice(0, 12))
    console.log(`#   ${d.seconds.toFixed(1).padStart(6)} s  ${d.job.key} (expected ${d.job.expected} s)`);
  const failed = done.filter((d) => !d.ok);
  // Each failure's message and stack again, last: a CI page that keeps only the end still shows why.
  for (const d of failed) console.log(`# FAILED: ${d.job.key}\n${d.failures ?? ''}`);
  for (const c of COUNTS) console.log(`ℹ ${c} ${total[c]}`);
  console.log(`ℹ duration_ms ${(wall * 1000).toFixed(0)}`);

  const measured = readDurations(join(ROOT, '.realm-test', 'durations.json'));
  for (const d of done) measured[d.job.key] = Math.round(d.seconds);
  mkdirSync(join(ROOT, '.realm-test'), { recursive: true });
  writeFileSync(join(ROOT, '.realm-test', 'durations.json'), JSON.stringify(sorted(measured), null, 1) + '\n');
  return failed.length || !done.length ? 1 : 0;
}

/** The spec reporter's closing list of a file's failures (message, stack), at most FAILURE_LINES lines. */
function failureSection(lines: string[]): string {
  const start = lines.findIndex((l) => /^✖ failing tests:/.test(l));
  const section = start < 0 ? lines.slice(-FAILURE_LINES) : lines.slice(start + 1);
  const shown = section.slice(0, FAILURE_LINES).map((l) => `#   ${l}`);
  if (section.length > FAILURE_LINES) shown.push(`#   … ${section.length - FAILURE_LINES} more lines in the file's report above`);
  // A file stopped whole (timed out, killed) names none of its tests: the ones that ended before
  // it say which one was running (the next in the file).
  const ended = lines.filter((l) => /^[✔✖﹣] /.test(l) && !l.includes('dist/test/'));
  if (section.some((l) => /timed out|cancelled|stopped/.test(l)))
    shown.push(`#   ${ended.length} test(s) ended before; the last: ${ended.at(-1) ?? '(none)'}`);
  return shown.join('\n').trimEnd();
}

function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

if (!existsSync(join(ROOT, 'dist', 'test')))
  throw new Error(`build first (npm run build): no ${relative(process.cwd(), join(ROOT, 'dist', 'test'))}`);
process.exitCode = await main();
