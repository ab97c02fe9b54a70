/**
 * Jobs across a cluster on a real etcd with three realm nodes as separate processes: one
 * scheduler by election places each attempt on a node that fits its [targeting]; logs and
 * artifacts are read through any node; a node killed mid-job has its attempt re-placed and the
 * run completes once; the scheduler's node dies and another takes over; etcd stopped for 10 s and
 * a node stopped past its lease lose nothing and complete nothing twice.
 */
import { after, before, describe, it } from 'node:test';
import { Etcd3 } from 'etcd3';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Client, type JobRun, type RealmError, type RealmEvent, events } from '@realm/sdk';
import { etcdSkipReason, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { startNode, type TestNode } from '../helpers/cluster.js';
import { namespaceSkipReason } from '../helpers/daemon.js';
import { probeCgroups } from '../../src/drivers/shared/cgroups.js';
import { BY_JOB, JOBS, LIVE, QUEUE, type QueueEntry, RUNS, byJobKey } from '../../src/cluster/job-store.js';
import type { JobRecord, JobRunRecord } from '../../src/jobs/records.js';
import { ownerOf } from '../../src/engine/owner.js';
import { until } from '../helpers/until.js';

const skip = etcdSkipReason() ?? (await namespaceSkipReason());
if (skip) console.log(`# cluster job tests skipped: ${skip}`);

const code = (e: unknown): string | undefined => (e as RealmError).code;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The job events a node has kept about `run` (its whole ring, read from the start), once `last` is among them. */
async function jobEvents(client: Client, run: string, last: string): Promise<RealmEvent[]> {
  const abort = new AbortController();
  const seen: RealmEvent[] = [];
  const timer = setTimeout(() => abort.abort(), 15_000);
  try {
    for await (const e of events({ types: ['job'], after: 0, signal: abort.signal }, client)) {
      if (e.ids?.run !== run) continue;
      seen.push(e);
      if (e.type === last) break;
    }
  } catch (e) {
    if (!abort.signal.aborted) throw e;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

const ended = (r: JobRun): boolean => ['succeeded', 'failed', 'cancelled'].includes(r.state);

void describe('jobs across a cluster of three nodes', { skip }, () => {
  let etcd: TestEtcd;
  let nodes: TestNode[] = [];
  const byId = (id: string | null | undefined): TestNode => {
    const n = nodes.find((x) => x.id === id);
    assert.ok(n, `no test node ${id}`);
    return n;
  };

  before(async () => {
    etcd = await startEtcd();
    const a = await startNode(etcd.cluster, 'job-a', { tags: ['pool', 'zone=a'] });
    const [forB, forC] = await Promise.all([a.client.nodes.invite(), a.client.nodes.invite()]);
    const [b, c] = await Promise.all([
      startNode(etcd.cluster, 'job-b', { tags: ['pool', 'gpu'], join: forB.token }),
      startNode(etcd.cluster, 'job-c', { tags: ['pool'], join: forC.token }),
    ]);
    nodes = [a, b, c];
  });

  after(async () => {
    const left: string[] = [];
    for (const n of nodes) left.push(...(await n.remove()));
    await etcd?.stop();
    assert.deepEqual(left, [], 'nothing left behind');
  });

  /** The node whose scheduler leads, as every node reports it (once they agree). */
  const scheduler = (asked: TestNode[], not?: string): Promise<string> =>
    until('one scheduler', async () => {
      const said = await Promise.all(
        asked.map(
          async (n) => (await n.client.request<{ cluster: { scheduler: string | null } }>('GET', '/v1/node')).cluster.scheduler,
        ),
      );
      return said[0] && said[0] !== not && said.every((s) => s === said[0]) ? said[0] : undefined;
    });

  void it('places by [targeting] on the node that fits; its log and artifact are read through every node', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    assert.ok(await scheduler(nodes));
    const sub = await a.client.jobs.submit({
      toml: 'name = "on-gpu"\n[run]\ncommand = "echo made on the gpu node; echo 42 > out.txt"\n[[artifacts]]\npath = "out.txt"\nname = "out"\n[targeting]\ntags = ["gpu"]\n',
    });
    assert.equal(sub.name, 'on-gpu');
    const run = await c.client.jobs.wait('on-gpu');
    assert.equal(run.state, 'succeeded', JSON.stringify(run));
    assert.deepEqual(
      run.attempts.map((x) => [x.state, x.node]),
      [['succeeded', 'job-b']],
    );
    // Each node's event stream tells what happened there: queued through A, run on B.
    const onA = await jobEvents(a.client, run.id, 'job.queued');
    assert.deepEqual(
      onA.map((e) => [e.type, e.ids?.node, e.ids?.job]),
      [['job.queued', 'job-a', 'on-gpu']],
    );
    const onB = await jobEvents(b.client, run.id, 'job.succeeded');
    assert.deepEqual(
      onB.map((e) => [e.type, e.ids?.node, e.data.attempts]),
      [
        ['job.running', 'job-b', 1],
        ['job.succeeded', 'job-b', 1],
      ],
    );
    // Submitted on A and waited for there in the same request, run on B: answered with the run ended.
    const t0 = Date.now();
    const waited = await a.client.jobs.submit(
      { toml: 'name = "on-gpu-waited"\n[run]\ncommand = "true"\n[targeting]\ntags = ["gpu"]\n' },
      { wait: 60 },
    );
    const ended = waited.runs.at(-1);
    assert.equal(ended?.state, 'succeeded', JSON.stringify(ended));
    assert.equal(ended.attempts[0]?.node, 'job-b');
    console.log(`# a job submitted with ?wait on job-a and run on job-b: answered ended after ${Date.now() - t0} ms`);
    await a.client.jobs.remove('on-gpu-waited');
    for (const n of [a, b, c]) {
      assert.match(await n.client.jobs.log('on-gpu'), /made on the gpu node/);
      assert.equal((await n.client.jobs.download('on-gpu', 'out')).toString(), '42\n');
      assert.deepEqual(
        (await n.client.jobs.list()).map((j) => j.name),
        ['on-gpu'],
      );
    }
    // Another user sees none of it, through any node.
    const user = await c.userClient(4242);
    await assert.rejects(user.jobs.run('on-gpu'), (e) => code(e) === 'JOB_NOT_FOUND');
    const art = run.artifacts[0]?.sha256 ?? '';
    const refsOnB = async (): Promise<number | undefined> =>
      (await b.client.request<{ blobs: { digest: string; refs: number }[] }>('GET', '/v1/blobs')).blobs.find(
        (x) => x.digest === `sha256:${art}`,
      )?.refs;
    assert.equal(await refsOnB(), 1, 'the artifact is held on the node that made it');
    assert.ok(existsSync(join(b.dataDir, 'jobs', 'logs', run.id)));
    await a.client.jobs.remove('on-gpu');
    assert.deepEqual(await b.client.jobs.list(), []);
    // Removed through A: B, which kept its log and artifact, lets them go (it watches the runs).
    await until(
      'its log and hold gone on job-b',
      async () => !existsSync(join(b.dataDir, 'jobs', 'logs', run.id)) && (await refsOnB()) === 0,
    );
  });

  void it("a cron job submitted on one node fires once per firing, from the scheduler's node; cancelled from another", async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    await b.client.jobs.submit({
      toml: 'name = "tick"\ntype = "cron"\n[schedule]\ncron = ["* * * * * *"]\n[run]\ncommand = "echo tick"\n',
    });
    await until('three firings ran', async () => {
      const job = await c.client.jobs.get('tick');
      return job.runs.filter((r) => r.state === 'succeeded').length >= 3;
    });
    await a.client.jobs.cancel('tick');
    await sleep(1500); // a firing already queued may still end
    const job = await c.client.jobs.get('tick');
    assert.equal(job.type, 'batch');
    const firings = job.runs.map((r) => r.firing);
    assert.equal(new Set(firings).size, firings.length, `one run per firing: ${firings.join(', ')}`);
    const count = job.runs.length;
    await sleep(1500);
    assert.equal((await b.client.jobs.get('tick')).runs.length, count, 'no firing after the cancel');
    await c.client.jobs.remove('tick');
  });

  void it('a spec no node can run is refused, naming every node and why', async () => {
    const [a] = nodes as [TestNode];
    await assert.rejects(
      a.client.jobs.submit({ toml: 'name = "nowhere"\n[run]\ncommand = "true"\n[targeting]\ntags = ["tpu"]\n' }),
      (e) => {
        assert.equal(code(e), 'JOB_UNPLACEABLE');
        const msg = (e as Error).message;
        for (const id of ['job-a', 'job-b', 'job-c']) assert.match(msg, new RegExp(`node ${id}: no tag tpu`));
        return true;
      },
    );
    await assert.rejects(
      a.client.jobs.submit({ toml: 'name = "nowhere"\n[run]\ncommand = "true"\n[targeting]\nplatform = "linux/riscv64"\n' }),
      (e) => code(e) === 'JOB_UNPLACEABLE' && /not linux\/riscv64/.test((e as Error).message),
    );
  });

  void it('a run cancelled through another node stops where it runs', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    await a.client.jobs.submit({
      toml: 'name = "long"\n[run]\ncommand = "echo begun; sleep 60"\n[targeting]\ntags = ["zone=a"]\n',
    });
    await until('begun on job-a', async () => /begun/.test(await b.client.jobs.log('long').catch(() => '')));
    const [cancelled] = await c.client.jobs.cancel('long');
    assert.equal(cancelled?.state, 'cancelled');
    const run = await a.client.jobs.run('long');
    assert.deepEqual(
      run.attempts.map((x) => [x.state, x.node]),
      [['cancelled', 'job-a']],
    );
    // Its sandbox goes on job-a (the one-shot kind leaves no sandbox record: its processes end).
    await until('no job sandbox on job-a', async () => {
      const list = await a.client.request<{ sandboxes: { labels: Record<string, string> }[] }>('GET', '/v1/sandboxes');
      return list.sandboxes.every((s) => s.labels['realm.job-run'] === undefined);
    });
    await a.client.jobs.remove('long');
  });

  void it('a node killed with -9 mid-job: the attempt is re-placed and the run completes once, elsewhere', async () => {
    await nodes[0]?.client.jobs.submit({
      toml: 'name = "survivor"\n[run]\ncommand = "echo start; sleep 4; echo done"\n[retry]\nattempts = 2\ndelay = "100ms"\n[targeting]\ntags = ["pool"]\n',
    });
    const first = await until('survivor running', async () => {
      const r = await nodes[0]?.client.jobs.run('survivor');
      return r?.attempts[0]?.node && /start/.test((await nodes[0]?.client.jobs.log('survivor').catch(() => '')) ?? '')
        ? r
        : undefined;
    });
    const victim = byId(first.attempts[0]?.node);
    const others = nodes.filter((n) => n !== victim);
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    const replaced = await until('a second attempt', async () => {
      const r = await others[0]?.client.jobs.run('survivor');
      return r && r.attempts.length >= 2 && r.attempts[1]?.state === 'running' ? r : undefined;
    });
    console.log(
      `# attempt re-placed on ${replaced.attempts[1]?.node} ${Date.now() - killedAt} ms after the kill -9 (lease TTL 3 s)`,
    );
    const run = await others[0]?.client.jobs.wait('survivor');
    assert.equal(run?.state, 'succeeded', JSON.stringify(run));
    assert.deepEqual(
      run?.attempts.map((x) => [x.state, x.node === victim.id]),
      [
        ['lost', true],
        ['succeeded', false],
      ],
    );
    assert.match(run?.attempts[0]?.error ?? '', new RegExp(`node ${victim.id} went down`));
    const log = (await others[1]?.client.jobs.log('survivor')) ?? '';
    assert.equal(log.match(/start/g)?.length, 1, log);
    assert.equal(log.match(/done/g)?.length, 1, log);
    await victim.restart();
    await others[0]?.client.jobs.remove('survivor');
  });

  void it("a node's daemon killed with -9, its machine up: the attempt's sandbox dies with it; the run completes elsewhere", async () => {
    const [a] = nodes as [TestNode];
    // A sandbox of the store (it has an artifact): a loop writing a marker, and a writer that
    // left the command's session (setsid) and outlives it.
    await a.client.jobs.submit({
      toml: `name = "tied"\n[run]\ncommand = "echo start; (setsid sh -c 'while :; do echo x >> bg; sleep 0.1; done' &); for i in $(seq 1 30); do echo $i >> marker; sleep 0.2; done; echo done"\n[[artifacts]]\npath = "marker"\nname = "marker"\n[retry]\nattempts = 2\ndelay = "100ms"\n[targeting]\ntags = ["pool"]\n`,
    });
    const first = await until('tied running', async () => {
      const r = await a.client.jobs.run('tied');
      return r.attempts[0]?.node && /start/.test(await a.client.jobs.log('tied').catch(() => '')) ? r : undefined;
    });
    const victim = byId(first.attempts[0]?.node);
    const others = nodes.filter((n) => n !== victim);
    const listed = await victim.client.request<{ sandboxes: { id: string; labels: Record<string, string> }[] }>(
      'GET',
      '/v1/sandboxes',
    );
    const sandbox = listed.sandboxes.find((s) => s.labels['realm.job-run'] === first.id)?.id;
    assert.ok(sandbox, 'the attempt runs in a sandbox of the store');
    // Its owner may label it, but not untie it: realm's label stays.
    const patched = await victim.client.request<{ labels: Record<string, string> }>('PATCH', `/v1/sandboxes/${sandbox}`, {
      labels: { mine: 'yes' },
    });
    assert.deepEqual(patched.labels, { 'realm.job-run': first.id, mine: 'yes' });
    const cg = probeCgroups();
    assert.ok(cg.ok);
    const procs = (): number[] => cg.manager.open(`${victim.cgroupRoot}/${sandbox}`).pids();
    const home = join(victim.dataDir, 'sandboxes', sandbox, 'rw', 'home');
    const size = (f: string): number => (existsSync(join(home, f)) ? statSync(join(home, f)).size : -1);
    await until('both writers write', () => Promise.resolve(size('marker') > 0 && size('bg') > 0));
    assert.ok(procs().length > 0);
    const killedAt = Date.now();
    await victim.kill('SIGKILL');
    try {
      // Its processes end with the daemon (not when its node restarts), before the re-placed attempt ends.
      await until('no process left in the sandbox', () => Promise.resolve(procs().length === 0), 10_000);
      console.log(`# the attempt's sandbox on ${victim.id} emptied ${Date.now() - killedAt} ms after its daemon's kill -9`);
      const [m, b] = [size('marker'), size('bg')];
      await sleep(1000);
      assert.deepEqual([size('marker'), size('bg')], [m, b], 'nothing writes any more');
      const run = await others[0]?.client.jobs.wait('tied');
      assert.equal(run?.state, 'succeeded', JSON.stringify(run));
      assert.deepEqual(
        run?.attempts.map((x) => [x.state, x.node === victim.id]),
        [
          ['lost', true],
          ['succeeded', false],
        ],
      );
      const marker = (await others[1]?.client.jobs.download('tied', 'marker'))?.toString() ?? '';
      assert.equal(marker.split('\n').filter(Boolean).length, 30, marker);
      assert.deepEqual(procs(), [], 'the killed attempt never came back');
    } finally {
      await victim.restart();
    }
    // Its node, back, destroys what was left of the sandbox (its mount and directory).
    await until('the lost sandbox gone', () => Promise.resolve(!existsSync(join(victim.dataDir, 'sandboxes', sandbox))));
    await others[0]?.client.jobs.remove('tied');
  });

  void it("the scheduler's node killed with -9: another node schedules within its lease", async () => {
    const lead = byId(await scheduler(nodes));
    const others = nodes.filter((n) => n !== lead);
    const killedAt = Date.now();
    await lead.kill('SIGKILL');
    try {
      const next = await scheduler(others, lead.id);
      const took = Date.now() - killedAt;
      // Placed while the old scheduler's node is still down.
      await others[0]?.client.jobs.submit({ toml: 'name = "after-failover"\n[run]\ncommand = "echo placed"\n' });
      const run = await others[1]?.client.jobs.wait('after-failover');
      console.log(
        `# scheduler ${lead.id} killed -9: ${next} schedules ${took} ms later (lease TTL 3 s); a job submitted then ended in ${Date.now() - killedAt - took} ms`,
      );
      assert.equal(run?.state, 'succeeded', JSON.stringify(run));
      assert.notEqual(run?.attempts[0]?.node, lead.id);
    } finally {
      await lead.restart();
    }
    await others[0]?.client.jobs.remove('after-failover');
  });

  void it('runs an older realm wrote (no byjob/ nor live/ keys) are indexed by the next scheduler: listed, placed and run', async () => {
    const [a] = nodes as [TestNode];
    const etcdClient = new Etcd3({ hosts: etcd.cluster.replace('etcd://', 'http://') });
    try {
      // A run that ended, as this realm writes it, then stripped of its byjob/ key; and a queued
      // one written as an older realm did: the run and its queue entry, no byjob/ nor live/ key.
      const done = await a.client.jobs.submit({ toml: 'name = "legacy"\n[run]\ncommand = "echo legacy ran"\n' });
      const doneId = done.runs[0]?.id ?? '';
      assert.equal((await a.client.jobs.wait('legacy')).state, 'succeeded');
      const doneRec = JSON.parse((await etcdClient.get(RUNS + doneId).string()) ?? '') as JobRunRecord;
      const job = JSON.parse((await etcdClient.get(JOBS + 'legacy').string()) ?? '') as JobRecord;
      const queuedId = `run-${randomBytes(6).toString('hex')}`;
      const queued: JobRunRecord = { ...doneRec, id: queuedId, n: 2, state: 'queued', createdAt: Date.now(), attempts: [] };
      for (const k of ['startedAt', 'endedAt', 'reason'] as const) delete queued[k];
      const entry: QueueEntry = { owner: ownerOf(queued), createdAt: queued.createdAt };
      const written = await etcdClient
        .if(RUNS + queuedId, 'Create', '==', 0)
        .then(
          etcdClient.put(RUNS + queuedId).value(JSON.stringify(queued)),
          etcdClient.put(QUEUE + queuedId).value(JSON.stringify(entry)),
          etcdClient.put(JOBS + 'legacy').value(JSON.stringify({ ...job, runs: 2 })),
          etcdClient.delete().key(byJobKey('legacy', doneId)),
        )
        .commit();
      assert.ok(written.succeeded);
      // The scheduler that leads has indexed already: to it, and to every node's lists, they are not there.
      assert.deepEqual((await a.client.jobs.get('legacy')).runs, []);
      await sleep(2500); // past a pass of the scheduler's own (every 2 s)
      assert.equal((JSON.parse((await etcdClient.get(RUNS + queuedId).string()) ?? '') as JobRunRecord).state, 'queued');

      // A new lead (the old one shut down: its campaign resigned) indexes them once, then serves them.
      const lead = byId(await scheduler(nodes));
      const others = nodes.filter((n) => n !== lead);
      await lead.stop();
      try {
        await scheduler(others, lead.id);
        const run = await others[0]?.client.jobs.wait('legacy');
        assert.deepEqual([run?.id, run?.state], [queuedId, 'succeeded'], JSON.stringify(run));
        assert.match((await others[1]?.client.jobs.log(queuedId)) ?? '', /^legacy ran$/m);
        assert.deepEqual(
          (await others[1]?.client.jobs.get('legacy'))?.runs.map((r) => [r.id, r.state]),
          [
            [doneId, 'succeeded'],
            [queuedId, 'succeeded'],
          ],
        );
        const keys = await etcdClient.getAll().prefix(BY_JOB).keys();
        assert.ok(keys.includes(byJobKey('legacy', doneId)) && keys.includes(byJobKey('legacy', queuedId)), keys.join());
        assert.equal(await etcdClient.get(LIVE + queuedId).string(), null, 'ended: no live/ entry left');
      } finally {
        await lead.restart();
      }
      await a.client.jobs.remove('legacy');
    } finally {
      etcdClient.close();
    }
  });

  void it('etcd stopped for 10 s mid-job: nothing lost, nothing completed twice, the run ends', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    await a.client.jobs.submit({
      toml: 'name = "through-outage"\n[run]\ncommand = "echo start; sleep 3; echo done"\n[retry]\nattempts = 3\ndelay = "100ms"\n',
    });
    await until('started', async () => /start/.test(await b.client.jobs.log('through-outage').catch(() => '')));
    etcd.pause();
    await sleep(10_000);
    etcd.resume();
    const run = await until(
      'the run ended',
      async () => {
        const r = await b.client.jobs.run('through-outage');
        return ended(r) ? r : undefined;
      },
      60_000,
    ).catch(async (e: unknown) => {
      const r = await b.client.jobs.run('through-outage').catch(() => null);
      throw new Error(`${(e as Error).message}: ${JSON.stringify(r)}\n${nodes.map((n) => `${n.id}: ${n.log()}`).join('\n')}`);
    });
    assert.equal(run.state, 'succeeded', JSON.stringify(run));
    // Every attempt before the last was stopped (cut off) or lost with its lease; one succeeded.
    assert.equal(run.attempts.filter((x) => x.state === 'succeeded').length, 1, JSON.stringify(run.attempts));
    assert.ok(
      run.attempts.slice(0, -1).every((x) => x.state === 'lost'),
      JSON.stringify(run.attempts),
    );
    await until('every node up again', async () => (await a.client.nodes.list()).every((n) => n.state === 'up'));
    await a.client.jobs.remove('through-outage');
  });

  void it('a node stopped past its lease: its attempt runs again elsewhere, its own outcome is refused', async () => {
    const [a] = nodes as [TestNode];
    await a.client.jobs.submit({
      toml: 'name = "paused"\n[run]\ncommand = "echo start; sleep 3; echo done"\n[retry]\nattempts = 2\ndelay = "100ms"\n[targeting]\ntags = ["pool"]\n',
    });
    const first = await until('paused running', async () => {
      const r = await a.client.jobs.run('paused');
      return r.attempts[0]?.node && /start/.test(await a.client.jobs.log('paused').catch(() => '')) ? r : undefined;
    });
    const stopped = byId(first.attempts[0]?.node);
    const watcher = nodes.find((n) => n !== stopped) as TestNode;
    stopped.proc.kill('SIGSTOP');
    try {
      await until('re-placed', async () => {
        const r = await watcher.client.jobs.run('paused');
        return r.attempts.length >= 2 ? r : undefined;
      });
      await sleep(4000); // its own copy ends meanwhile (the daemon is stopped, not its sandbox)
    } finally {
      stopped.proc.kill('SIGCONT');
    }
    const run = await until('the run ended', async () => {
      const r = await watcher.client.jobs.run('paused');
      return ended(r) ? r : undefined;
    });
    assert.equal(run.state, 'succeeded', JSON.stringify(run));
    assert.deepEqual(
      run.attempts.map((x) => [x.state, x.node === stopped.id]),
      [
        ['lost', true],
        ['succeeded', false],
      ],
    );
    // The stopped node's outcome arrived after its attempt was re-placed: refused, not recorded.
    await until(
      'its own outcome refused',
      () =>
        Promise.resolve(
          /attempt 1: (its outcome \(\w+\) was not recorded|stopped: its assignment was withdrawn)/.test(stopped.log()),
        ),
      15_000,
    );
    await until('back up', async () => (await watcher.client.nodes.get(stopped.id)).state === 'up');
    await a.client.jobs.remove('paused');
  });
});
