/**
 * The cluster's job scheduler: one at a time, by etcd3's election (every node campaigns; the
 * oldest campaign leads; a dead leader's campaign ends with its lease). Its election key's create
 * revision is its fencing token: every write it makes is a transaction that compares it, so a
 * scheduler that lost the lead without knowing it writes nothing.
 *
 * A pass reads the cluster at one revision, in one transaction of four range reads (the nodes'
 * leases, the assignments, the queue, and `live/` — every run that has not ended, as the store keeps
 * it beside the run), and:
 * - finds attempts whose assignment is gone while their run still says running — their node's
 *   lease ended (it died, or was cut off past its TTL and stopped them) — marks them lost and
 *   queues a retry per the run's policy, or fails the run;
 * - places each queued run that is due (oldest first, owners taking turns) on the least busy node
 *   that fits: one transaction, guarded by the token, the target's lease and the queue entry,
 *   deletes the entry, writes the attempt into the run and creates `assign/NODE/RUN` under the
 *   target's lease (create-only: nothing is placed twice).
 * Passes run when anything they read changes (a watch), and when a retry falls due.
 */
import type { Campaign, Etcd3 } from 'etcd3';
import { ENDED, type JobRecord, type JobRunRecord } from '../jobs/records.js';
import { afterAttempt, applyAfter } from '../jobs/retry.js';
import { errorMessage } from '../util/errors.js';
import { PREFIX, answered } from './etcd.js';
import { LastingWatch } from './lasting-watch.js';
import { jobMisfit, jobSlots } from './job-placement.js';
import {
  ASSIGN,
  type Assignment,
  CALL_MS,
  type EtcdJobStore,
  type Guard,
  JOBS,
  LIVE,
  type LiveRun,
  QUEUE,
  type QueueEntry,
  RUNS,
  assignKey,
  retryPuts,
  watchedRecord,
} from './job-store.js';
import type { NodeView } from './types.js';
import { log } from '../logs/log.js';
import { SerialPasses } from '../util/serial-passes.js';

const ALIVE = `${PREFIX}alive/`;

export interface SchedulerOptions {
  selfId: string;
  ttlSeconds: number;
  fenced: () => boolean;
  list: () => Promise<NodeView[]>;
  /** Told when this node gains or loses the lead (cron jobs fire on the leader). */
  onLead: (leading: boolean) => void;
  /** A cron job written, or a job removed, on any node. */
  onJobs: () => void;
  /** A run this scheduler changed (an attempt found lost), as an event on this node's bus. */
  told: (run: JobRunRecord) => void;
}

interface Lead {
  key: string;
  token: string;
}

interface Snapshot {
  leases: Map<string, string>;
  busy: Map<string, number>;
  assigned: Set<string>;
  queue: { id: string; entry: QueueEntry; mod: string }[];
  /** Every run that has not ended. */
  live: Map<string, LiveRun>;
}

export class Scheduler {
  private campaign: Campaign | undefined;
  private lead: Lead | undefined;
  private watch: LastingWatch | undefined;
  private wake: NodeJS.Timeout | undefined;
  private tick: NodeJS.Timeout | undefined;
  private readonly passes = new SerialPasses(
    () => this.pass(),
    () => !!this.lead && !this.closed,
    (e: unknown) => log.error(`scheduling: ${errorMessage(e)}`, { err: e }),
  );
  /** Whether this lead has given every run kept a `live/` entry (runs written by an older realm had none). */
  private indexed = false;
  private closed = false;

  constructor(
    private readonly etcd: Etcd3,
    private readonly store: EtcdJobStore,
    private readonly opts: SchedulerOptions,
  ) {}

  get leading(): boolean {
    return this.lead !== undefined;
  }

  /** While this node leads: the compare its writes carry (its election key's revision), so a deposed leader writes nothing. */
  fence(): Guard | undefined {
    return this.lead ? this.guard(this.lead) : undefined;
  }

  async start(): Promise<void> {
    this.watch = new LastingWatch(
      'the jobs',
      () => this.etcd.watch().prefix(PREFIX),
      (w) =>
        w.on('data', (res) => {
          const keys = res.events.map((e) => e.kv.key.toString());
          // The cron scheduler re-reads every job when told: only for a cron job written, or a job
          // removed (a cron job made batch, cancelled, is not told: its timer fires for nothing once).
          const cron = (v: Buffer): boolean => watchedRecord<JobRecord>(v)?.spec.type === 'cron';
          if (res.events.some((e) => e.kv.key.toString().startsWith(JOBS) && (e.type === 'Delete' || cron(e.kv.value))))
            this.opts.onJobs();
          if (keys.some((k) => [QUEUE, ASSIGN, ALIVE, RUNS].some((p) => k.startsWith(p)))) this.kick();
        }),
      () => {
        this.opts.onJobs();
        this.kick();
      },
    );
    await this.watch.start();
    // A safety net: whatever a watch missed (etcd restarted, say) is seen within seconds.
    this.tick = setInterval(() => this.kick(), 2000);
    this.tick.unref();
    this.campaignNow();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.tick);
    clearTimeout(this.wake);
    this.depose('the daemon stops');
    await this.watch?.close();
    // Resigning revokes the campaign's lease: another node leads at once.
    await answered(this.campaign?.resign() ?? Promise.resolve(), 2000, 'resigning').catch(() => undefined);
    await this.passes.settled();
  }

  private campaignNow(): void {
    if (this.closed) return;
    const c = this.etcd.namespace(PREFIX).election('scheduler', this.opts.ttlSeconds).campaign(this.opts.selfId);
    this.campaign = c;
    c.on('elected', () => void this.elected(c));
    c.on('error', (e: Error) => {
      if (this.campaign !== c) return;
      this.depose(`its campaign failed (${e.message})`);
      this.campaign = undefined;
      c.resign().catch(() => undefined);
      if (!this.closed) setTimeout(() => this.campaignNow(), 1000).unref();
    });
  }

  private async elected(c: Campaign): Promise<void> {
    try {
      const key = await c.getCampaignKey();
      const kv = (await answered(this.etcd.get(key).exec(), CALL_MS, 'reading the election')).kvs[0];
      if (!kv || this.campaign !== c || this.closed) return;
      this.lead = { key, token: kv.create_revision };
      this.indexed = false;
      log.info(`node ${this.opts.selfId} now schedules the cluster's jobs (fencing token ${kv.create_revision})`, {
        node: this.opts.selfId,
      });
      this.opts.onLead(true);
      this.kick();
    } catch (e) {
      c.emit('error', e instanceof Error ? e : new Error(errorMessage(e)));
    }
  }

  private depose(why: string): void {
    if (!this.lead) return;
    this.lead = undefined;
    log.warn(`node ${this.opts.selfId} no longer schedules jobs: ${why}`, { node: this.opts.selfId });
    this.opts.onLead(false);
  }

  /** A pass now, or right after the one running. */
  kick(): void {
    this.passes.kick();
  }

  private async pass(): Promise<void> {
    const lead = this.lead;
    if (!lead || this.opts.fenced()) return;
    let snap = await this.read();
    if (!this.indexed) {
      await this.index(lead, snap);
      snap = await this.read();
    }
    // Attempts whose assignment is gone while their run still says running: lost with their node.
    for (const [id, run] of snap.live) {
      const last = run.last;
      if (run.state !== 'running' || last?.state !== 'running' || !last.node) continue;
      if (!snap.assigned.has(`${last.node}/${id}`)) await this.lost(lead, id, last.node);
    }
    const nodes = await this.opts.list();
    const now = Date.now();
    let wakeAt = Infinity;
    for (const q of fair(snap.queue)) {
      if ((q.entry.notBefore ?? 0) > now) {
        wakeAt = Math.min(wakeAt, q.entry.notBefore ?? 0);
        continue;
      }
      const run = snap.live.get(q.id);
      if (!run || (run.state !== 'queued' && run.state !== 'retrying')) continue;
      // The run of the same job it waits for has not ended (ended or removed: no live entry).
      if (q.entry.after && snap.live.has(q.entry.after)) continue;
      if (!(await this.place(lead, q.id, run, q.mod, nodes, snap))) break; // lost the lead
    }
    clearTimeout(this.wake);
    if (wakeAt < Infinity) {
      this.wake = setTimeout(() => this.kick(), Math.max(0, wakeAt - Date.now()));
      this.wake.unref();
    }
  }

  /**
   * The nodes' leases, the assignments, the queue and every run not ended, at one revision (one
   * transaction of four range reads): a pass reads nothing else until it writes.
   */
  private async read(): Promise<Snapshot> {
    const res = await answered(
      this.etcd
        // A compare that always holds (no key is the prefix itself): the reads at one revision.
        .if(ALIVE, 'Create', '==', 0)
        .then(
          this.etcd.getAll().prefix(ALIVE),
          this.etcd.getAll().prefix(ASSIGN),
          this.etcd.getAll().prefix(QUEUE),
          this.etcd.getAll().prefix(LIVE),
        )
        .commit(),
      CALL_MS,
      'reading the queue',
    );
    const snap: Snapshot = { leases: new Map(), busy: new Map(), assigned: new Set(), queue: [], live: new Map() };
    for (const kv of res.responses.flatMap((r) => r.response_range?.kvs ?? [])) {
      const key = kv.key.toString();
      if (key.startsWith(ALIVE)) snap.leases.set(key.slice(ALIVE.length), kv.lease);
      else if (key.startsWith(ASSIGN)) {
        const [node = '', run = ''] = key.slice(ASSIGN.length).split('/');
        snap.assigned.add(`${node}/${run}`);
        snap.busy.set(node, (snap.busy.get(node) ?? 0) + 1);
      } else if (key.startsWith(QUEUE))
        snap.queue.push({
          id: key.slice(QUEUE.length),
          entry: JSON.parse(kv.value.toString()) as QueueEntry,
          mod: kv.mod_revision,
        });
      else if (key.startsWith(LIVE)) snap.live.set(key.slice(LIVE.length), JSON.parse(kv.value.toString()) as LiveRun);
    }
    return snap;
  }

  /**
   * Once per lead: runs kept by a realm before `byjob/` and `live/` keys get theirs (a run not
   * ended is rewritten as it is, guarded as every write of the scheduler's).
   */
  private async index(lead: Lead, snap: Snapshot): Promise<void> {
    const runs = await this.store.listJobRuns();
    await this.store.indexByJob(runs);
    for (const run of runs) {
      if (ENDED.includes(run.state) || snap.live.has(run.id)) continue;
      const res = await this.store.update(run.id, (cur) => ({ run: cur, guards: [this.guard(lead)] }));
      if (!res.done && res.why === 'refused' && !(await this.stillLeading(lead))) return;
    }
    this.indexed = true;
  }

  private guard(lead: Lead): Guard {
    return [lead.key, 'Create', '==', lead.token];
  }

  /** A refused write: still leading? (A deposed scheduler stops at once.) */
  private async stillLeading(lead: Lead): Promise<boolean> {
    const kv = (await answered(this.etcd.get(lead.key).exec(), CALL_MS, 'reading the election')).kvs[0];
    if (kv?.create_revision === lead.token) return true;
    if (this.lead === lead) this.depose('its election key is gone (its lease ended)');
    return false;
  }

  /** An attempt whose node's lease ended: lost; the run retried per its policy, or failed. */
  private async lost(lead: Lead, id: string, node: string): Promise<void> {
    const res = await this.store.update(id, (run) => {
      const last = run.attempts.at(-1);
      if (run.state !== 'running' || last?.state !== 'running' || last.node !== node) return null;
      const now = Date.now();
      Object.assign(last, { state: 'lost', endedAt: now, error: `node ${node} went down while it ran (its lease ended)` });
      applyAfter(run, afterAttempt(run), now);
      return {
        run,
        guards: [this.guard(lead), [assignKey(node, id), 'Create', '==', 0]],
        puts: retryPuts(run),
      };
    });
    if (res.done) {
      log.warn(`job run ${id}: attempt lost with node ${node}; ${res.run.reason ?? ''}`, { runId: id, node });
      this.opts.told(res.run);
    } else if (res.why === 'refused') await this.stillLeading(lead);
  }

  /** Place a due run on the least busy node that fits; false when this node no longer leads. */
  private async place(
    lead: Lead,
    id: string,
    run: LiveRun,
    queueMod: string,
    nodes: NodeView[],
    snap: Snapshot,
  ): Promise<boolean> {
    const want = run.want;
    const why: string[] = [];
    const fit = nodes.filter((n) => {
      const m = snap.leases.has(n.id) ? jobMisfit(n, want, snap.busy.get(n.id) ?? 0) : 'down';
      if (m) why.push(`node ${n.id}: ${m}`);
      return m === null;
    });
    if (!fit.length) {
      const reason = `waiting for a node: ${why.join('; ')}`;
      if (run.reason !== reason)
        await this.store.update(id, (cur) =>
          cur.state === 'queued' || cur.state === 'retrying' ? { run: { ...cur, reason }, guards: [this.guard(lead)] } : null,
        );
      return true;
    }
    const load = (n: NodeView): number => (snap.busy.get(n.id) ?? 0) / Math.max(1, jobSlots(n));
    const target = fit.reduce((best, n) => (load(n) < load(best) ? n : best));
    const lease = snap.leases.get(target.id) ?? '';
    const res = await this.store.update(id, (cur) => {
      if (cur.state !== 'queued' && cur.state !== 'retrying') return null;
      const now = Date.now();
      const n = cur.attempts.length + 1;
      cur.attempts.push({ n, state: 'running', node: target.id, startedAt: now, artifacts: [], logBytes: 0 });
      cur.state = 'running';
      cur.startedAt ??= now;
      delete cur.nextAttemptAt;
      cur.reason = `attempt ${n} placed on node ${target.id}`;
      const key = assignKey(target.id, cur.id);
      return {
        run: cur,
        guards: [
          this.guard(lead),
          [ALIVE + target.id, 'Lease', '==', lease],
          [QUEUE + cur.id, 'Mod', '==', queueMod],
          [key, 'Create', '==', 0],
        ],
        puts: [{ key, value: JSON.stringify({ attempt: n, token: lead.token } satisfies Assignment), lease }],
        deletes: [QUEUE + cur.id],
      };
    });
    if (res.done) {
      snap.busy.set(target.id, (snap.busy.get(target.id) ?? 0) + 1);
      return true;
    }
    return res.why !== 'refused' || (await this.stillLeading(lead));
  }
}

/** Due order: oldest first within each owner, owners taking turns (one owner's thousand runs do not starve another's one). */
function fair<T extends { entry: QueueEntry }>(queue: T[]): T[] {
  const byOwner = new Map<string, T[]>();
  for (const q of [...queue].sort((a, b) => a.entry.createdAt - b.entry.createdAt)) {
    const list = byOwner.get(q.entry.owner) ?? [];
    list.push(q);
    byOwner.set(q.entry.owner, list);
  }
  const out: T[] = [];
  const lists = [...byOwner.values()];
  for (let i = 0; out.length < queue.length; i++) for (const l of lists) if (l[i]) out.push(l[i]);
  return out;
}
