/**
 * Hostile jobs: what a job's submitter controls on the job path — an input archive the daemon
 * has unpacked, the files the command leaves where the spec names artifacts, and how much it
 * writes and prints — must not reach the host. An archive with `..` entries, absolute paths, and
 * links written through must leave the host untouched; an artifact path that is (or passes
 * through) a symbolic link must give only what the sandbox itself could read; a huge artifact or
 * log is refused at its bound and the run is still recorded.
 *
 * Run once, on the namespace driver (test/hostile/jobs/, not re-run per driver): what is tested is
 * the job path's own handling — archives are unpacked by `tar` inside the sandbox, artifacts read
 * by realm-fs inside it, the bounds are the daemon's — the same code on every driver; each
 * driver's file tool is the conformance suite's.
 *
 * Guards: every command a job runs starts with the shell guard (it refuses to act where it sees
 * the host). An archive is not a program: every path it names points into a scratch directory
 * this test made (/var/tmp/realm-hostile-jobs-*), so even an archive unpacked on the host could
 * write nowhere else.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Client, type JobRun } from '@realm/sdk';
import { extract, pack } from 'tar-stream';
import { MAX_LOG_BYTES } from '../../../src/jobs/attempt.js';
import { type TestDaemon, namespaceSkipReason, removeTestDirs, startTestDaemon } from '../../helpers/daemon.js';
import { assertContained, nonce, shGuard } from '../common.js';

const skip = await namespaceSkipReason();

/** In the daemon's environment (it runs in this process): no artifact may carry it. */
const ENV_SECRET = `host-env-${nonce()}`;
process.env.REALM_HOSTILE_JOBS_SECRET = ENV_SECRET;

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A tar made of exactly these entries, names and link targets as given (nothing normalised). */
async function hostileTar(
  entries: { name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; body?: string }[],
): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((resolve) => p.on('end', () => resolve()));
  for (const e of entries) {
    const { body, ...header } = e;
    await new Promise<void>((resolve, reject) =>
      p.entry({ mode: e.type === 'directory' ? 0o777 : 0o666, ...header }, body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** The regular files of a tar (the artifact of a directory), by name; links by name with their target. */
async function tarFiles(tar: Buffer): Promise<{ files: Map<string, Buffer>; links: Map<string, string> }> {
  const files = new Map<string, Buffer>();
  const links = new Map<string, string>();
  const ex = extract();
  await new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (c: unknown) => void parts.push(c as Buffer));
      stream.on('end', () => {
        if (h.type === 'file') files.set(h.name, Buffer.concat(parts));
        if (h.type === 'symlink' || h.type === 'link') links.set(h.name, h.linkname ?? '');
        next();
      });
      stream.resume();
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
    ex.end(tar);
  });
  return { files, links };
}

/** Names under `dir` (recursively when `deep`) that contain `marker`. */
function namesWith(dir: string, marker: string, deep: boolean): string[] {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir, { recursive: deep }).map(String);
  } catch {
    return [];
  }
  return entries.filter((e) => e.includes(marker)).map((e) => join(dir, e));
}

void describe('hostile jobs', { skip }, () => {
  let t: TestDaemon;
  let c: Client;
  let scratch: string;
  before(async () => {
    t = await startTestDaemon({ warm: 1 });
    c = t.client;
    scratch = `/var/tmp/realm-hostile-jobs-${nonce()}`;
    mkdirSync(scratch, { mode: 0o777 });
    // Writable by anyone: only the sandbox's walls keep a sandbox process from writing here.
    chmodSync(scratch, 0o777);
  });
  after(async () => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  async function submit(toml: string): Promise<JobRun> {
    const info = await c.jobs.submit({ toml });
    const run = await c.jobs.wait(info.runs[0]?.id ?? '', { intervalMs: 100 });
    if (process.env.HOSTILE_DEBUG) console.error(run, (await c.jobs.log(run.id)).slice(-4000));
    return run;
  }

  void it('an input archive with .. entries, absolute paths and links written through writes nothing outside the sandbox', async () => {
    const n = nonce();
    const victim = join(scratch, `victim-${n}`);
    writeFileSync(victim, `untouched ${n}\n`);
    chmodSync(victim, 0o666);
    const up = '../'.repeat(16);
    const tar = await hostileTar([
      { name: `ok-${n}.txt`, body: 'inside\n' },
      { name: `${up}${scratch.slice(1)}/dotdot-${n}`, body: 'escaped\n' },
      { name: `../../dotdot-home-${n}`, body: 'escaped\n' },
      { name: `${up}${dirname(t.dataDir).slice(1)}/dotdot-data-${n}`, body: 'escaped\n' },
      { name: `${scratch}/abs-${n}`, body: 'escaped\n' },
      { name: victim, body: 'overwritten by an absolute entry\n' },
      { name: `esc-${n}`, type: 'symlink', linkname: scratch },
      { name: `esc-${n}/through-${n}`, body: 'escaped\n' },
      { name: `esc-${n}/victim-${n}`, body: 'overwritten through a symlink\n' },
      { name: `rel-${n}`, type: 'symlink', linkname: `${up}${scratch.slice(1)}` },
      { name: `rel-${n}/rel-through-${n}`, body: 'escaped\n' },
      { name: `vict-${n}`, type: 'symlink', linkname: victim },
      { name: `vict-${n}`, body: 'overwritten through a file symlink\n' },
      { name: `hard-${n}`, type: 'link', linkname: victim },
      { name: `hard-${n}`, body: 'overwritten through a hard link\n' },
      { name: `${up}${scratch.slice(1)}/dir-${n}/`, type: 'directory' },
    ]);
    const digest = (await c.blobs.put(tar)).digest.slice('sha256:'.length);
    const run = await submit(
      `name = "unpack-${n}"\n[run]\ndriver = "namespace"\ncommand = ${JSON.stringify(
        `${shGuard(t.dataDir)}find . -path ./.cache -prune -o -print`,
      )}\ntimeout = "1m"\n[[inputs]]\nsource = "cas:sha256:${digest}"\ndest = "in"\nunpack = true\n[retry]\nattempts = 0\n`,
    );
    const log = await c.jobs.log(run.id);
    assert.doesNotMatch(log, /GUARD/, 'the guard tripped: the job saw the host');
    // Recorded, whichever way the sandbox's tar took the archive (refusing entries fails the run).
    assert.ok(['succeeded', 'failed'].includes(run.state), `${run.state}: ${run.reason}\n${log}`);
    if (run.state === 'succeeded') assert.match(log, new RegExp(`in/ok-${n}\\.txt`), log);
    assert.equal(readFileSync(victim, 'utf8'), `untouched ${n}\n`, 'the host file was written');
    assert.deepEqual(
      readdirSync(scratch).filter((e) => e.includes(n)),
      [`victim-${n}`],
      'something appeared on the host',
    );
    const found = [
      ...namesWith(t.dataDir, n, true).filter((p) => !p.startsWith(join(t.dataDir, 'jobs', 'logs'))),
      ...[dirname(t.dataDir), '/', '/tmp', '/var/tmp', '/home', homedir(), process.cwd()].flatMap((d) => namesWith(d, n, false)),
    ].filter((p) => p !== victim);
    assert.deepEqual(found, [], 'an archive entry landed on the host');
    await assertContained(t);
  });

  void it('an artifact path that is, or passes through, a symbolic link gives only what the sandbox could read', async () => {
    const n = nonce();
    const secretText = `host-secret-${nonce()}`;
    const secret = join(scratch, `secret-${n}`);
    writeFileSync(secret, `${secretText}\n`);
    chmodSync(secret, 0o644);
    const token = readFileSync(join(t.dataDir, 'admin-token'), 'utf8').trim();
    const shadow = existsSync('/etc/shadow') ? readFileSync('/etc/shadow') : Buffer.alloc(0);
    // name → what the link points at; the artifact is the link itself.
    const links: Record<string, string> = {
      shadow: '/etc/shadow',
      environ: '/proc/self/environ',
      p1environ: '/proc/1/environ',
      p1shadow: '/proc/1/root/etc/shadow',
      hostfile: secret,
      token: join(t.dataDir, 'admin-token'),
      rootdir: '/',
    };
    // name → a path whose directory is a link (realm-fs resolves it): the file it reaches.
    const through: Record<string, string> = {
      viaShadow: 'via/etc/shadow',
      viaSelf: 'self/environ',
      viaP1: 'p1/environ',
      viaP1root: 'p1/root/etc/shadow',
      viaHost: `via${secret}`,
      viaToken: `via${join(t.dataDir, 'admin-token')}`,
    };
    const script = [
      shGuard(t.dataDir),
      ...Object.entries(links).map(([name, to]) => `ln -s ${to} ${name}`),
      'ln -s / via; ln -s /proc/self self; ln -s /proc/1 p1',
      // A directory of links, collected as a tar.
      'mkdir d',
      ...Object.entries(links).map(([name, to]) => `ln -s ${to} d/${name}`),
      // What the sandbox itself reads at each artifact path.
      'mkdir seen',
      ...Object.entries({ ...Object.fromEntries(Object.keys(links).map((k) => [k, k])), ...through }).map(
        ([name, path]) => `cat ${path} > seen/${name} 2>/dev/null || rm -f seen/${name}`,
      ),
      'true',
    ].join('\n');
    const artifacts = [
      ...Object.keys(links).map((name) => ({ name, path: name })),
      ...Object.entries(through).map(([name, path]) => ({ name, path })),
      { name: 'd', path: 'd' },
      { name: 'seen', path: 'seen' },
    ];
    const run = await submit(
      `name = "links-${n}"\n[run]\ndriver = "namespace"\ncommand = ${JSON.stringify(script)}\ntimeout = "1m"\n${artifacts
        .map((a) => `[[artifacts]]\nname = "${a.name}"\npath = "${a.path}"\n`)
        .join('')}`,
    );
    const log = await c.jobs.log(run.id);
    assert.doesNotMatch(log, /GUARD/, 'the guard tripped: the job saw the host');
    assert.equal(run.state, 'succeeded', `${run.reason}\n${log}`);
    const seen = (await tarFiles(await c.jobs.download(run.id, 'seen'))).files;
    const seenAs = (name: string): Buffer | undefined => seen.get(`seen/${name}`);
    const host = [secretText, token, ENV_SECRET, ...(shadow.length ? [shadow.toString('latin1')] : [])];
    const got = new Map(run.artifacts.map((a) => [a.name, a]));
    // A link itself is never an artifact (it is not a file or a directory).
    for (const name of Object.keys(links)) assert.ok(!got.has(name), `the link ${name} gave an artifact\n${log}`);
    for (const [name, path] of Object.entries(through)) {
      if (!got.has(name)) continue;
      const bytes = await c.jobs.download(run.id, name);
      const text = bytes.toString('latin1');
      for (const h of host) assert.ok(!text.includes(h.trim()), `artifact ${name} (${path}) holds a host secret`);
      const mine = seenAs(name);
      assert.ok(mine !== undefined, `artifact ${name} (${path}) was collected, but the sandbox cannot read it`);
      if (name === 'viaSelf') {
        // The reader's own environment: realm-fs's, every entry one the sandbox's own process has.
        const theirs = new Set(mine.toString('latin1').split('\0'));
        for (const e of text.split('\0')) assert.ok(theirs.has(e), `artifact ${name} has ${e}, which the sandbox does not`);
      } else assert.equal(sha(bytes), sha(mine), `artifact ${name} (${path}) differs from what the sandbox reads there`);
    }
    const d = await tarFiles(await c.jobs.download(run.id, 'd'));
    assert.deepEqual([...d.files.keys()], [], 'a directory artifact followed its links');
    assert.deepEqual(
      [...d.links.entries()].sort(),
      Object.entries(links)
        .map(([name, to]) => [`d/${name}`, to])
        .sort(),
    );
    await assertContained(t);
  });

  void it('a huge artifact and a huge log are refused at their bounds, and the run is recorded', async () => {
    const n = nonce();
    // Sparse: 300 MiB that take no disk, past the 256 MiB an artifact may hold; then 80 MiB of
    // output, past the 64 MiB a log may hold.
    const script = `${shGuard(t.dataDir)}echo small > small; truncate -s 300M big; mkdir bigdir; truncate -s 300M bigdir/f
head -c 80M /dev/zero | tr '\\0' x; head -c 1M /dev/zero >&2`;
    const run = await submit(
      `name = "huge-${n}"\n[run]\ndriver = "namespace"\ncommand = ${JSON.stringify(script)}\ntimeout = "2m"\n[retry]\nattempts = 0\n` +
        ['small', 'big', 'bigdir'].map((a) => `[[artifacts]]\nname = "${a}"\npath = "${a}"\n`).join(''),
    );
    const [attempt] = run.attempts;
    assert.ok(attempt);
    assert.equal(run.state, 'failed', run.reason ?? '');
    assert.equal(attempt.verdict, 'output-limit', run.reason ?? '');
    assert.match(run.reason ?? '', /output-limit/);
    // The log holds at most the bound, plus realm's own lines.
    const file = join(t.dataDir, 'jobs', 'logs', run.id, '1.log');
    const size = statSync(file).size;
    assert.ok(size <= MAX_LOG_BYTES + 64 * 1024, `the log is ${size} bytes`);
    assert.ok(attempt.logBytes <= MAX_LOG_BYTES + 64 * 1024, `logBytes ${attempt.logBytes}`);
    const tail = readFileSync(file)
      .subarray(-64 * 1024)
      .toString('latin1');
    assert.match(
      tail,
      /artifact big \(.*\) not collected: .*256 MiB|artifact big \(.*\) not collected: .*268435456/,
      tail.slice(-2000),
    );
    assert.match(tail, /artifact bigdir \(.*\) not collected: .*more than 268435456 bytes/, tail.slice(-2000));
    // What fits is still collected, marked with the attempt's outcome.
    assert.deepEqual(
      run.artifacts.map((a) => [a.name, a.outcome]),
      [['small', 'output-limit']],
    );
    assert.equal((await c.jobs.download(run.id, 'small')).toString(), 'small\n');
    // The same flood from a job with nothing in or out (it runs in a one-shot sandbox).
    const flood = await submit(
      `name = "flood-${n}"\n[run]\ndriver = "namespace"\ncommand = ${JSON.stringify(`${shGuard(t.dataDir)}head -c 80M /dev/zero`)}\n[retry]\nattempts = 0\n`,
    );
    assert.equal(flood.state, 'failed', flood.reason ?? '');
    assert.equal(flood.attempts[0]?.verdict, 'output-limit', flood.reason ?? '');
    const floodLog = statSync(join(t.dataDir, 'jobs', 'logs', flood.id, '1.log')).size;
    assert.ok(floodLog <= MAX_LOG_BYTES + 64 * 1024, `the log is ${floodLog} bytes`);
    await assertContained(t);
  });
});
