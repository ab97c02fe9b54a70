/**
 * Jobs, as issue 16's acceptance says: a job builds a small C project sent as a tarball and gives
 * the binary back as an artifact; a second job takes that artifact and runs it; a cron job fires
 * on schedule; a job killed by its timeout still gives back what it wrote, marked timeout; bad
 * input is refused whole; a failed attempt is retried per the spec; another user sees nothing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type JobRun, Sandbox } from '@realm/sdk';
import { Tokens } from '../../src/daemon/auth.js';
import { KEEP_RUNS } from '../../src/jobs/jobs.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { type CliResult, realm } from '../helpers/cli.js';
import { type TestDaemon, leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon } from '../helpers/daemon.js';
import { freePort } from '../helpers/port.js';
import { type SpawnedDaemon, spawnDaemon } from '../helpers/spawned-daemon.js';

const skip = await namespaceSkipReason();

const MAKEFILE = 'app: main.o greet.o\n\tcc -o app main.o greet.o\n%.o: %.c\n\tcc -c -o $@ $<\n';
const MAIN_C =
  '#include <stdio.h>\nconst char *greet(void);\nint main(void) { printf("%s from a job\\n", greet()); return 0; }\n';
const GREET_C = 'const char *greet(void) { return "hello"; }\n';

/** A C project (Makefile and two .c files) as a tarball, made in `dir`. */
function project(dir: string): string {
  mkdirSync(join(dir, 'proj'));
  writeFileSync(join(dir, 'proj', 'Makefile'), MAKEFILE);
  writeFileSync(join(dir, 'proj', 'main.c'), MAIN_C);
  writeFileSync(join(dir, 'proj', 'greet.c'), GREET_C);
  execFileSync('tar', ['-czf', join(dir, 'proj.tar.gz'), '-C', join(dir, 'proj'), '.']);
  return join(dir, 'proj.tar.gz');
}

/** bin/realm in `cwd` against the daemon at `url`. */
const realmIn = (url: string, args: string[], cwd: string): Promise<CliResult> => realm(args, { url, cwd, timeoutMs: 120_000 });

/** Live host processes with `arg` as one whole argument. */
function procsWithArg(arg: string): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0').includes(arg)) continue;
      if (!/^State:\s+[ZX]/m.test(readFileSync(`/proc/${pid}/status`, 'latin1'))) n++;
    } catch {
      /* gone meanwhile */
    }
  }
  return n;
}

async function ended(c: Client, ref: string): Promise<JobRun> {
  return c.jobs.wait(ref, { intervalMs: 100 });
}

void describe('jobs', { skip }, () => {
  let t: TestDaemon;
  let userA: Client;
  let userB: Client;
  const dirs: string[] = [];
  before(async () => {
    t = await startTestDaemon({ warm: 1 });
    const store = new SqliteStore(join(t.dataDir, 'state.db'));
    try {
      const tokens = new Tokens(store, join(t.dataDir, 'admin-token'));
      userA = new Client({ url: t.url, token: (await tokens.create('a', 'uid:4101')).token });
      userB = new Client({ url: t.url, token: (await tokens.create('b', 'uid:4102')).token });
    } finally {
      store.close();
    }
  });
  after(async () => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('builds a C project from a tarball input, and a second job runs the binary it gave back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-job-src-'));
    dirs.push(dir);
    const sha256 = (await userA.blobs.put(project(dir))).digest.slice('sha256:'.length);
    const build = await userA.jobs.submit({
      toml: `name = "build"\n\n[run]\ncommand = "make -C src"\ntimeout = "2m"\n\n[[inputs]]\nsource = "cas:sha256:${sha256}"\ndest = "src"\nunpack = true\n\n[[artifacts]]\npath = "src/app"\nname = "app"\n`,
    });
    const built = await ended(userA, build.runs[0]?.id ?? '');
    assert.equal(built.state, 'succeeded', `${built.reason}\n${await userA.jobs.log(built.id)}`);
    const [app] = built.artifacts;
    assert.equal(app?.name, 'app');
    assert.equal(app.kind, 'file');
    assert.equal(app.outcome, 'ok');
    assert.match(await userA.jobs.log('build'), /cc -o app main\.o greet\.o/);
    let streamed = '';
    for await (const text of userA.jobs.follow(built.id, { follow: false })) streamed += text;
    assert.equal(streamed, await userA.jobs.log(built.id), 'the log as events is the log');
    assert.deepEqual(
      (await userA.jobs.artifacts('build')).map((a) => a.name),
      ['app'],
    );

    const use = await userA.jobs.submit({
      toml: 'name = "use"\n[run]\ncommand = "./app"\n',
      inputs: [{ artifact: 'build:app', dest: 'app' }],
    });
    const ran = await ended(userA, use.name);
    assert.equal(ran.state, 'succeeded', ran.reason ?? '');
    assert.equal(ran.inputs[0]?.from, 'build#1:app');
    assert.match(await userA.jobs.log(ran.id), /hello from a job\n/);
    // The binary comes back byte for byte, and it is what the second job ran.
    const bin = await userA.jobs.download('build', 'app');
    assert.equal(bin.subarray(0, 4).toString('latin1'), '\x7fELF');
    assert.deepEqual(await leftovers(t), []);
  });

  void it('the CLI: submit with a local file as an input, wait, list, read the log, download the artifact', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-job-cli-'));
    dirs.push(dir);
    project(dir);
    writeFileSync(
      join(dir, 'build.toml'),
      'name = "cli-build"\n[run]\ncommand = "make -C src"\n[[artifacts]]\npath = "src/app"\nname = "app"\n',
    );
    const sub = await realmIn(t.url, ['job', 'submit', 'build.toml', '--input', 'src/=proj.tar.gz', '--wait', '--json'], dir);
    assert.equal(sub.code, 0, sub.stderr);
    assert.equal((JSON.parse(sub.stdout) as JobRun).state, 'succeeded');
    const ls = await realmIn(t.url, ['job', 'ls', '--json'], dir);
    assert.ok((JSON.parse(ls.stdout) as { name: string }[]).some((j) => j.name === 'cli-build'));
    assert.match((await realmIn(t.url, ['job', 'logs', 'cli-build'], dir)).stdout, /cc -o app main\.o greet\.o/);
    const dl = await realmIn(t.url, ['job', 'download', 'cli-build', 'app', 'app.bin'], dir);
    assert.equal(dl.code, 0, dl.stderr);
    assert.equal(readFileSync(join(dir, 'app.bin')).subarray(0, 4).toString('latin1'), '\x7fELF');
    writeFileSync(join(dir, 'bad.toml'), 'name = "cli-bad"\n[run]\ncommand = "exit 4"\n[retry]\nattempts = 0\n');
    const bad = await realmIn(t.url, ['job', 'submit', 'bad.toml', '--wait'], dir);
    assert.equal(bad.code, 1, 'a failed job makes --wait exit non-zero');
    assert.match(bad.stderr, /failed: attempt 1 failed: exit 4/);
    const typo = await realmIn(t.url, ['job', 'submit', 'nope.toml'], dir);
    assert.notEqual(typo.code, 0);
    writeFileSync(join(dir, 'typo.toml'), 'name = "x"\n[run]\ncomand = "true"\n');
    const spec = await realmIn(t.url, ['job', 'submit', 'typo.toml'], dir);
    assert.equal(spec.code, 2, 'a bad spec is a usage error');
    assert.match(spec.stderr, /line 3: run\.comand: unknown key.*\[JOB_SPEC_INVALID\]/);
  });

  void it('a client waits for a run to end without polling: answered when it ends, or as it is at its timeout; or submits and waits in one request', async () => {
    const sub = await userA.jobs.submit({ name: 'waited', run: { command: 'sleep 1' } });
    const id = sub.runs[0]?.id ?? '';
    const now = await userA.request<JobRun>('GET', `/v1/jobs/${id}/wait?timeout=0`);
    assert.ok(['queued', 'running'].includes(now.state), `timeout=0 answers at once: ${now.state}`);
    const done = await userA.request<JobRun>('GET', '/v1/jobs/waited/wait?timeout=60');
    assert.equal(done.id, id);
    assert.equal(done.state, 'succeeded', done.reason ?? '');
    await assert.rejects(
      userA.request('GET', `/v1/jobs/${id}/wait?timeout=forever`),
      (e: Error & { code?: string }) => e.code === 'INVALID_REQUEST' && /seconds to wait/.test(e.message),
    );
    await assert.rejects(
      userA.request('GET', `/v1/jobs/${id}/wait?timeout=301`),
      (e: Error & { code?: string }) => e.code === 'INVALID_REQUEST',
    );
    await assert.rejects(
      userB.request('GET', `/v1/jobs/${id}/wait?timeout=0`),
      (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND',
    );
    // Submitted and waited for in one request: the answer holds the run ended, its output logged.
    const one = await userA.jobs.submit({ name: 'waited-in-one', run: { command: 'sleep 0.3; echo one' } }, { wait: 60 });
    assert.equal(one.runs.at(-1)?.state, 'succeeded', one.runs.at(-1)?.reason ?? '');
    assert.match(await userA.jobs.log('waited-in-one'), /^one$/m);
    // Past its timeout: the run as it is, still going.
    const going = await userA.jobs.submit({ name: 'waited-past', run: { command: 'sleep 2' } }, { wait: 0.2 });
    assert.ok(['queued', 'running'].includes(going.runs.at(-1)?.state ?? ''), going.runs.at(-1)?.state);
    // A bad wait refuses the submission whole: nothing is submitted.
    await assert.rejects(
      userA.request('POST', '/v1/jobs?wait=soon', { name: 'never-made', run: { command: 'true' } }),
      (e: Error & { code?: string }) => e.code === 'INVALID_REQUEST' && /wait=soon: write the seconds to wait/.test(e.message),
    );
    await assert.rejects(userA.jobs.get('never-made'), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
    assert.equal((await userA.jobs.wait('waited-past')).state, 'succeeded');
  });

  void it('a job killed by its timeout still gives back what it wrote, marked timeout', async () => {
    const job = await userA.jobs.submit({
      name: 'slow',
      run: { command: 'echo partial > out.txt; mkdir -p dist && echo a > dist/a; sleep 60', timeout: '1s' },
      artifacts: [
        { path: 'out.txt', name: 'out' },
        { path: 'dist', name: 'dist' },
      ],
    });
    const run = await ended(userA, job.runs[0]?.id ?? '');
    assert.equal(run.state, 'failed');
    assert.equal(run.attempts[0]?.verdict, 'timeout');
    assert.deepEqual(
      run.artifacts.map((a) => [a.name, a.kind, a.outcome]),
      [
        ['out', 'file', 'timeout'],
        ['dist', 'tar', 'timeout'],
      ],
    );
    assert.equal((await userA.jobs.download(run.id, 'out')).toString(), 'partial\n');
  });

  void it('a job with nothing in or out (a one-shot sandbox) and one with an artifact (a sandbox of the store) get the same image, limits and environment', async () => {
    const script =
      'import os\nprint(os.environ["GREETING"], os.getuid(), os.getcwd(), flush=True)\nb = bytearray(200 * 1024 * 1024)\nprint("allocated")';
    for (const artifacts of [[], [{ path: '.profile', name: 'p' }]]) {
      const job = await userA.jobs.submit({
        name: `limits-${artifacts.length}`,
        run: { language: 'python', command: ['python3', '-c', script], memory: '64m', env: { GREETING: 'hi' } },
        retry: { attempts: 0 },
        artifacts,
      });
      const run = await ended(userA, job.runs[0]?.id ?? '');
      const how = artifacts.length ? '[sandbox of the store] ' : '[one-shot sandbox] ';
      assert.equal(run.attempts[0]?.verdict, 'oom', `${how}${run.reason}\n${await userA.jobs.log(run.id)}`);
      const log = await userA.jobs.log(run.id);
      assert.match(log, /^hi 1000 \/home\/user\n/, how + log);
      assert.doesNotMatch(log, /allocated/, how + log);
    }
  });

  void it('a failed attempt is retried per the spec, each attempt with its own log', async () => {
    const job = await userA.jobs.submit({
      toml: 'name = "flaky"\n[run]\ncommand = "echo try; exit 3"\n[retry]\nattempts = 2\ndelay = "50ms"\nbackoff = "exponential"\n',
    });
    const run = await ended(userA, job.name);
    assert.equal(run.state, 'failed');
    assert.deepEqual(
      run.attempts.map((a) => [a.n, a.state, a.exitCode]),
      [
        [1, 'failed', 3],
        [2, 'failed', 3],
        [3, 'failed', 3],
      ],
    );
    assert.match(run.reason ?? '', /attempt 3 failed: exit 3 \(after 3 attempts\)/);
    assert.match(await userA.jobs.log(run.id, 2), /^try\n/);
  });

  void it('a cron job fires on its schedule; cancelling it turns the schedule off', async () => {
    await userA.jobs.submit({
      toml: 'name = "tick"\ntype = "cron"\n[schedule]\ncron = ["* * * * * *"]\n[run]\ncommand = "date +%s"\n',
    });
    let fired: JobRun | undefined;
    for (let i = 0; i < 100 && !fired; i++) {
      fired = (await userA.jobs.get('tick')).runs.find((r) => r.state === 'succeeded');
      if (!fired) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(fired, 'a firing ran');
    assert.ok(fired.firing, 'the run says which firing made it');
    await userA.jobs.cancel('tick');
    const job = await userA.jobs.get('tick');
    assert.equal(job.type, 'batch');
    assert.ok(job.events.some((e) => e.type === 'fired'));
    const count = job.runs.length;
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await userA.jobs.get('tick')).runs.length, count, 'no firing after the cancel');
  });

  void it(`a job keeps its latest ${KEEP_RUNS} ended runs: an older one goes with its log and its hold on its artifact`, async () => {
    // One more run than the bound, all queued at once (each gives an artifact of its own bytes).
    const total = KEEP_RUNS + 1;
    const submitted: string[] = [];
    for (let i = 0; i < total; i++) {
      const job = await userA.jobs.submit({
        toml: `name = "keep"\n[run]\ncommand = "echo ${i} > a"\n[[artifacts]]\npath = "a"\nname = "a"\n`,
      });
      submitted.push(job.runs.at(-1)?.id ?? '');
    }
    let job = await userA.jobs.get('keep');
    for (let i = 0; i < 600 && job.runs.some((r) => !['succeeded', 'failed', 'cancelled'].includes(r.state)); i++) {
      await new Promise((r) => setTimeout(r, 100));
      job = await userA.jobs.get('keep');
    }
    // The last run to end took the job past the bound: the first run is gone, the rest kept.
    assert.deepEqual(
      job.runs.map((r) => r.id),
      submitted.slice(1),
    );
    assert.ok(job.runs.every((r) => r.state === 'succeeded'));
    await assert.rejects(userA.jobs.get(submitted[0] ?? ''), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
    assert.ok(!existsSync(join(t.dataDir, 'jobs', 'logs', submitted[0] ?? '')), "the first run's log is gone");
    assert.ok(existsSync(join(t.dataDir, 'jobs', 'logs', submitted[1] ?? '')), "the second run's log is kept");
    // Its artifact (`0\n`) is held by nothing now; each kept one by its run.
    const digest = (text: string): string => `sha256:${createHash('sha256').update(text).digest('hex')}`;
    const blobs = new Map((await userA.blobs.ls()).map((b) => [b.digest, b.refs]));
    assert.equal(blobs.get(digest('0\n')) ?? 0, 0);
    assert.equal(blobs.get(digest('1\n')), 1);
    assert.equal(blobs.get(digest(`${KEEP_RUNS}\n`)), 1);
    await userA.jobs.remove('keep');
  });

  void it('bad input is refused whole: a missing input hash, a path outside the working directory, an unknown key', async () => {
    const missing = 'ab'.repeat(32);
    await assert.rejects(
      userA.jobs.submit({
        toml: `name = "x"\n[run]\ncommand = "true"\n[[inputs]]\nsource = "cas:sha256:${missing}"\ndest = "in"\n`,
      }),
      (e: Error & { code?: string }) => e.code === 'JOB_INPUT_NOT_FOUND' && e.message.includes(missing),
    );
    await assert.rejects(
      userA.jobs.submit({ toml: 'name = "x"\n[run]\ncommand = "true"\n[[artifacts]]\npath = "../../etc"\nname = "etc"\n' }),
      (e: Error & { code?: string }) =>
        e.code === 'JOB_SPEC_INVALID' && /line 5: artifacts\[0\]\.path: \.\.\/\.\.\/etc is outside/.test(e.message),
    );
    await assert.rejects(
      userA.jobs.submit({ toml: 'name = "x"\n[run]\ncommand = "true"\nmemroy = "1g"\n' }),
      (e: Error & { code?: string }) => e.code === 'JOB_SPEC_INVALID' && /line 4: run\.memroy: unknown key/.test(e.message),
    );
    await assert.rejects(
      userA.jobs.submit({ toml: 'name = "x"\n[run]\ncommand = "true"\n[targeting]\ntags = ["gpu"]\n' }),
      (e: Error & { code?: string }) => e.code === 'JOB_UNPLACEABLE' && /no tag gpu/.test(e.message),
    );
    await assert.rejects(userA.jobs.get('x'), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
    // An input past what the daemon passes through its memory is refused at submission.
    const big = (await userA.blobs.put(new Uint8Array(256 * 1024 ** 2 + 1))).digest.slice('sha256:'.length);
    await assert.rejects(
      userA.jobs.submit({ name: 'x', run: { command: 'true' }, inputs: [{ source: `cas:sha256:${big}`, dest: 'big' }] }),
      (e: Error & { code?: string }) => e.code === 'FILE_TOO_LARGE' && /at most 268435456 bytes/.test(e.message),
    );
    await userA.blobs.rm(`sha256:${big}`);
  });

  void it("another user sees none of a user's jobs, runs, logs or artifacts, and cannot take its artifacts as inputs", async () => {
    const a = await userA.jobs.get('build');
    const runId = a.runs[0]?.id ?? '';
    for (const ref of ['build', runId]) {
      await assert.rejects(userB.jobs.get(ref), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
      await assert.rejects(userB.jobs.log(ref), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
      await assert.rejects(userB.jobs.download(ref, 'app'), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
    }
    assert.deepEqual(
      (await userB.jobs.list()).map((j) => j.name),
      [],
    );
    await assert.rejects(
      userB.jobs.submit({ name: 'steal', run: { command: 'true' }, inputs: [{ artifact: `${runId}:app`, dest: 'app' }] }),
      (e: Error & { code?: string }) => e.code === 'JOB_INPUT_NOT_FOUND',
    );
    await assert.rejects(userB.jobs.remove('build'), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
  });

  void it('removing a job takes its runs and logs; an active one must be cancelled first', async () => {
    const job = await userA.jobs.submit({ name: 'long', run: { command: 'sleep 60' } });
    await assert.rejects(userA.jobs.remove('long'), (e: Error & { code?: string }) => e.code === 'JOB_BUSY');
    await userA.jobs.cancel(job.name);
    const run = await ended(userA, job.runs[0]?.id ?? '');
    assert.equal(run.state, 'cancelled');
    await userA.jobs.remove('long');
    await assert.rejects(userA.jobs.get(run.id), (e: Error & { code?: string }) => e.code === 'JOB_NOT_FOUND');
    assert.deepEqual(await leftovers(t), []);
  });

  void it('a daemon killed with -9 mid-job: the attempt is lost, its sandbox destroyed, and the run goes on after the restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-jobkill-'));
    const cgroupRoot = `realm-test-jobkill-${process.pid}`;
    const port = await freePort();
    let daemon: SpawnedDaemon | undefined;
    try {
      daemon = await spawnDaemon({ dataDir, cgroupRoot, listen: `127.0.0.1:${port}` });
      let c = daemon.client;
      // One job in a sandbox of the store (it has an artifact), one in a one-shot sandbox (nothing
      // in or out); each sleeps for a time of its own, so its processes can be told apart.
      const marks = { survivor: `4.${process.pid % 1000}1`, 'survivor-oneshot': `4.${process.pid % 1000}2` };
      const ids: Record<string, string> = {};
      for (const [name, mark] of Object.entries(marks)) {
        const job = await c.jobs.submit({
          name,
          run: { command: `sleep ${mark}; echo done > out; echo done` },
          retry: { attempts: 1, delay: '10ms' },
          ...(name === 'survivor' ? { artifacts: [{ path: 'out', name: 'out' }] } : {}),
        });
        ids[name] = job.runs[0]?.id ?? '';
      }
      for (const id of Object.values(ids)) {
        for (let i = 0; i < 200; i++) {
          const first = await c.jobs.run(id);
          if (first.attempts[0]?.state === 'running' && first.state === 'running') break;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      const id = ids.survivor ?? '';
      const labelled = (await c.request<{ sandboxes: { id: string; labels: Record<string, string> }[] }>('GET', '/v1/sandboxes'))
        .sandboxes;
      const lostSandbox = labelled.find((sb) => sb.labels['realm.job-run'] === id)?.id;
      assert.ok(lostSandbox, 'the attempt runs in a sandbox of the store, labelled with its run');
      assert.ok(
        !labelled.some((sb) => sb.labels['realm.job-run'] === ids['survivor-oneshot']),
        'the other runs in a one-shot sandbox',
      );
      // An ordinary sandbox with a command in flight: unlike a job's, it outlives the daemon.
      const plain = await Sandbox.create({ image: 'host' }, c);
      const plainMark = `300.${process.pid % 1000}3`;
      const inFlight = plain.exec(`sleep ${plainMark}`).catch(() => undefined);
      for (let i = 0; i < 200 && procsWithArg(plainMark) === 0; i++) await new Promise((r) => setTimeout(r, 50));
      assert.equal(procsWithArg(plainMark), 1, 'the ordinary sandbox runs its command');
      await daemon.stop('SIGKILL');
      await inFlight;
      assert.equal(procsWithArg(plainMark), 1, "the ordinary sandbox's command survives the kill -9");
      daemon = await spawnDaemon({ dataDir, cgroupRoot, listen: `127.0.0.1:${port}` });
      c = daemon.client;
      const recovered = await Sandbox.get(plain.id, c);
      assert.equal(recovered.info.status, 'running');
      assert.equal(procsWithArg(plainMark), 1, 'and is still running after the restart');
      assert.equal((await recovered.exec('echo still here')).stdout, 'still here\n');
      await recovered.destroy();
      assert.equal(procsWithArg(plainMark), 0);
      // From the restart on, never two of an attempt's commands at once (the lost one is gone first).
      let most = 0;
      for (const [name, mark] of Object.entries(marks)) {
        for (;;) {
          most = Math.max(most, procsWithArg(mark));
          const run = await c.jobs.run(ids[name] ?? '');
          if (['succeeded', 'failed', 'cancelled'].includes(run.state)) break;
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      assert.ok(most <= 1, `${most} of one attempt's commands ran at once`);
      for (const rid of Object.values(ids)) {
        const run = await c.jobs.run(rid);
        assert.equal(run.state, 'succeeded', run.reason ?? '');
        assert.deepEqual(
          run.attempts.map((a) => a.state),
          ['lost', 'succeeded'],
        );
        assert.match(run.attempts[0]?.error ?? '', /daemon stopped while this attempt ran/);
        assert.match(await c.jobs.log(rid), /^done\n/m);
      }
      const after = (await c.request<{ sandboxes: { id: string }[] }>('GET', '/v1/sandboxes')).sandboxes.map((sb) => sb.id);
      assert.ok(!after.includes(lostSandbox), "the lost attempt's sandbox is gone");
    } finally {
      await daemon?.stop();
      assert.deepEqual(await leftovers({ dataDir, cgroupRoot }), []);
      removeTestDirs({ dataDir, cgroupRoot });
    }
  });
});

void describe('job logs, all jobs together', { skip }, () => {
  let t: TestDaemon;
  before(async () => {
    t = await startTestDaemon({ warm: 1, maxJobLogBytes: 64 * 1024 });
  });
  after(async () => {
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it('stay under --max-job-logs: the oldest ended runs lose theirs first, and their records say so', async () => {
    const ids: string[] = [];
    // 30 KB of log each: by the third, the first run's log must go.
    for (let i = 0; i < 4; i++) {
      const job = await t.client.jobs.submit({ name: `chatty-${i}`, run: { command: 'head -c 30000 /dev/zero | tr "\\0" x' } });
      ids.push((await ended(t.client, job.runs[0]?.id ?? '')).id);
    }
    const runs = await Promise.all(ids.map((id) => t.client.jobs.run(id)));
    assert.ok(runs[0]?.logDropped, 'the first run is marked');
    assert.equal(runs.at(-1)?.logDropped, null, 'the latest keeps its log');
    assert.match(await t.client.jobs.log(ids[0] ?? ''), /^realm: this log \(\d+ bytes\) was dropped at /);
    assert.match(await t.client.jobs.log(ids.at(-1) ?? ''), /^x{30000}realm: command ended: exit 0/);
    let total = 0;
    for (const id of ids)
      for (const f of readdirSync(join(t.dataDir, 'jobs', 'logs', id)))
        total += statSync(join(t.dataDir, 'jobs', 'logs', id, f)).size;
    assert.ok(total <= 64 * 1024, `${total} bytes of job logs are kept`);
  });
});
