/**
 * Membership on etcd. Each node keeps two keys:
 * - `nodes/<id>`: what an operator sets and what outlives the node's process — address, tags,
 *   draining, when it first joined;
 * - `alive/<id>`: its report (drivers, capacity, load), bound to its lease and rewritten every
 *   third of the TTL. A node whose lease ended (dead, cut off, shut down) has no alive key: down.
 *
 * Fencing by time: the etcd3 client can miss a lease lost on a silently cut connection, so the
 * node judges by when etcd last *answered* (a keepalive or a write). Past half the TTL without an
 * answer it is fenced: it takes no new work (placement skips it, local placement refuses) until
 * etcd answers again. A lost lease is replaced by a new one as soon as etcd answers.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Etcd3, Lease } from 'etcd3';
import { RealmError, errorMessage } from '../util/errors.js';
import { PREFIX, answered } from './etcd.js';
import { LastingWatch } from './lasting-watch.js';
import { notFound } from './local.js';
import { retag } from './tags.js';
import type { NodeReport, NodeView, Nodes, NotedSandbox } from './types.js';
import { log } from '../logs/log.js';

interface Member {
  id: string;
  address: string;
  tags: string[];
  draining: boolean;
  joinedAt: string;
}

const NODES = `${PREFIX}nodes/`;
const ALIVE = `${PREFIX}alive/`;
const SECRET = `${PREFIX}secret`;
const SANDBOXES = `${PREFIX}sandboxes/`;
const INVITES = `${PREFIX}invites/`;
/** The scheduler's election (etcd3's Election under PREFIX): see scheduler.ts. */
export const ELECTION = `${PREFIX}election/scheduler/`;
/** Made, with its member key, by the node that founds the cluster. */
const FOUNDED = `${PREFIX}founded`;

/** Invites are kept by their sha256 only: reading etcd does not give one away. */
const inviteKey = (token: string): string => createHash('sha256').update(token).digest('hex');
/** How long a call to etcd may take before the caller is told etcd is unavailable. */
const CALL_MS = 3000;
/** How long a read of the node list is reused (a change seen by the watch drops it sooner). */
const LIST_MS = 1000;
/** How long an answer may take before its question counts as open. */
const ASK_GRACE_MS = 300;

export interface MembershipOptions {
  id: string;
  /** Where peers reach this node's API (known once it listens). */
  address: () => string;
  /** Tags given at start (`--tag`): they replace the stored ones; none given keeps them. */
  tags: string[];
  /** An invite (`realm cluster invite`): wanted the first time a node joins a cluster that has members. */
  join?: string | undefined;
  /** Lease TTL in seconds: a dead node is down after at most this. */
  ttl: number;
  report: () => Promise<NodeReport>;
}

export class EtcdNodes implements Nodes {
  readonly clustered = true;
  readonly selfId: string;
  private lease: Lease | undefined;
  private secret: Buffer = Buffer.alloc(0);
  private token = '';
  private lastAnswer = Date.now();
  /** When this node's lease was last known alive at etcd: the sending of the last keepalive or lease write it answered. */
  private aliveAt = Date.now();
  /** The oldest keepalive sent and not answered yet. */
  private firedAt: number | undefined;
  /** The id of the lease this node took last (kept while it is lost, until a new one replaces it). */
  private leaseId: string | undefined;
  /** Told when this node takes a new lease (at join, and each time it rejoins). */
  readonly leaseListeners = new Set<() => void>();
  /** When the oldest question etcd has not answered yet was sent. */
  private asked: number | undefined;
  private timers: NodeJS.Timeout[] = [];
  private closed = false;
  private rejoining = false;
  private cached: { at: number; read: Promise<NodeView[]> } | undefined;
  private watch: LastingWatch | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly opts: MembershipOptions,
  ) {
    this.selfId = opts.id;
  }

  /** Told each node that joins or leaves, as the watch sees it (the event stream, events.ts). */
  onMember: ((change: 'joined' | 'left', id: string) => void) | undefined;

  /** Join: the cluster's secret, this node's member key, a lease and its first report. */
  async start(): Promise<void> {
    this.secret = await answered(this.ensureSecret(), CALL_MS, 'at join');
    this.token = `rlmpeer_${createHmac('sha256', this.secret).update('realm peer v1').digest('hex')}`;
    await answered(this.upsertMember(), CALL_MS, 'at join');
    await this.takeLease();
    // Any change to a member or its report (another node's edit, a node joining or leaving)
    // drops the cached list at once.
    this.watch = new LastingWatch(
      'the nodes',
      () => this.etcd.watch().prefix(PREFIX),
      (w) =>
        w.on('data', (res) => {
          // Only members and their reports change the list (jobs and sandboxes move far more often).
          if (res.events.some((e) => /^(nodes|alive)\//.test(e.kv.key.toString().slice(PREFIX.length)))) this.cached = undefined;
          // A report's key is made anew when a node comes (version 1) and goes with its lease.
          for (const e of res.events) {
            const key = e.kv.key.toString();
            if (!key.startsWith(ALIVE)) continue;
            if (e.type === 'Put' && e.kv.version === '1') this.onMember?.('joined', key.slice(ALIVE.length));
            else if (e.type === 'Delete') this.onMember?.('left', key.slice(ALIVE.length));
          }
        }),
      // Members that came or went meanwhile are not told as events; the list is read afresh.
      () => void (this.cached = undefined),
    );
    await this.watch.start();
    const every = (this.opts.ttl * 1000) / 3;
    this.timers.push(setInterval(() => void this.refresh(), every));
  }

  /**
   * Half the TTL without an answer from etcd to a question still open (a keepalive or a write
   * sent at least a moment ago). A short stall of this process (no question sent) fences nothing
   * by itself; one past the whole TTL does, until etcd answers again.
   */
  get fenced(): boolean {
    const now = Date.now();
    const silent = now - this.lastAnswer;
    // A whole TTL without an answer (this process was stopped, say): the lease may be gone
    // already; no new work until etcd answers again (a lost lease is replaced first).
    if (silent > this.opts.ttl * 1000) return true;
    return this.asked !== undefined && now - this.asked > ASK_GRACE_MS && silent > (this.opts.ttl * 1000) / 2;
  }

  /** The etcd client, for the cluster's jobs (they keep their records next to the members'). */
  get client(): Etcd3 {
    return this.etcd;
  }

  /** The lease TTL in ms. */
  get ttlMs(): number {
    return this.opts.ttl * 1000;
  }

  /**
   * How long etcd has been silent: since its last answer, while a question is open (or past the
   * TTL whatever). A node past its TTL by this must end its job attempts: its lease may be gone.
   */
  silentMs(): number {
    const silent = Date.now() - this.lastAnswer;
    return this.asked !== undefined || silent > this.opts.ttl * 1000 ? silent : 0;
  }

  /**
   * How long since this node's lease was last known alive at etcd (a keepalive or a write under
   * it answered; counted from when it was sent, since etcd renewed the lease after that). Below a
   * third of the TTL while etcd answers; the lease may have ended once this passes the TTL.
   */
  sinceLeaseAliveMs(): number {
    return Date.now() - this.aliveAt;
  }

  /** The lease this node took last (a key under any other is a previous lease's, gone or going). */
  get currentLease(): string | undefined {
    return this.leaseId;
  }

  /** Put `key` under this node's lease, so it goes with the node; refused while the node has none (rejoining). */
  async putLeased(key: string, value: string): Promise<void> {
    if (!this.lease) throw new RealmError('CLUSTER_UNAVAILABLE', 'this node has no lease now (it is rejoining the cluster)');
    const sent = Date.now();
    await answered(this.lease.put(key).value(value).exec(), CALL_MS, 'writing under the lease');
    this.aliveAt = Math.max(this.aliveAt, sent);
  }

  /** The node whose scheduler leads (the oldest campaign in the election), or null. */
  async scheduler(): Promise<string | null> {
    const res = await answered(
      this.etcd.getAll().prefix(ELECTION).sort('Create', 'Ascend').limit(1).strings(),
      CALL_MS,
      'finding the scheduler',
    );
    return Object.values(res)[0] ?? null;
  }

  private answer(): void {
    this.lastAnswer = Date.now();
    this.asked = undefined;
  }

  private ask(): void {
    this.asked ??= Date.now();
  }

  /**
   * Every member with its state. Read from etcd at most once a second (placement asks on every
   * run); an edit made here is seen at once.
   */
  list(): Promise<NodeView[]> {
    const now = Date.now();
    if (!this.cached || now - this.cached.at > LIST_MS) {
      const read = this.read();
      this.cached = { at: now, read };
      read.catch(() => {
        if (this.cached?.read === read) this.cached = undefined;
      });
    }
    return this.cached.read;
  }

  private async read(): Promise<NodeView[]> {
    this.ask();
    const [members, alive] = await answered(
      Promise.all([this.etcd.getAll().prefix(NODES).strings(), this.etcd.getAll().prefix(ALIVE).strings()]),
      CALL_MS,
      'for the node list',
    );
    this.answer();
    const out: NodeView[] = [];
    for (const raw of Object.values(members)) {
      const m = JSON.parse(raw) as Member;
      const a = alive[ALIVE + m.id];
      out.push(this.view(m, a === undefined ? null : (JSON.parse(a) as NodeReport)));
    }
    return out.sort((x, y) => x.id.localeCompare(y.id));
  }

  async get(id: string): Promise<NodeView> {
    const node = (await this.list()).find((n) => n.id === id);
    if (!node) throw notFound(id);
    return node;
  }

  async drain(id: string, draining: boolean): Promise<NodeView> {
    await this.edit(id, (m) => ({ ...m, draining }));
    return this.get(id);
  }

  /** Only a node that is down: its member key goes, and the notes of its sandboxes (they are lost). */
  async remove(id: string): Promise<void> {
    const node = await this.get(id);
    if (node.state !== 'down')
      throw new RealmError(
        'NODE_UP',
        `node ${id} is ${node.state}; drain it (realm node drain ${id}), stop its daemon, then remove it`,
      );
    const notes = await answered(this.etcd.getAll().prefix(SANDBOXES).strings(), CALL_MS, 'listing sandboxes');
    const mine = Object.entries(notes)
      .filter(([, raw]) => (JSON.parse(raw) as NotedSandbox).node === id)
      .map(([key]) => key);
    // Still down when the key goes (a node that came back meanwhile keeps its membership).
    const txn = await answered(
      this.etcd
        .if(ALIVE + id, 'Create', '==', 0)
        .then(this.etcd.delete().key(NODES + id), ...mine.map((k) => this.etcd.delete().key(k)))
        .commit(),
      CALL_MS,
      'removing the node',
    );
    if (!txn.succeeded) throw new RealmError('NODE_UP', `node ${id} came back up meanwhile; it stays`);
    this.cached = undefined;
  }

  async tag(id: string, add: string[], remove: string[]): Promise<NodeView> {
    await this.edit(id, (m) => ({ ...m, tags: retag(m.tags, add, remove) }));
    return this.get(id);
  }

  /**
   * `sandboxes/ID` → {node, owner, view}, written when a sandbox is made through the API and
   * removed when it is destroyed through it: any node finds it in one read, and one on a node that
   * is down is reported lost rather than unknown. (One the node removes by itself, at its TTL,
   * leaves a stale note: the node it names answers 404, and the note goes.)
   */
  async recordSandbox(id: string, owner: string, view: Record<string, unknown>): Promise<void> {
    await answered(
      this.etcd
        .put(SANDBOXES + id)
        .value(JSON.stringify({ node: this.selfId, owner, view } satisfies NotedSandbox))
        .exec(),
      CALL_MS,
      'recording a sandbox',
    );
  }

  async forgetSandbox(id: string): Promise<void> {
    await answered(
      this.etcd
        .delete()
        .key(SANDBOXES + id)
        .exec(),
      CALL_MS,
      'forgetting a sandbox',
    );
  }

  async claimSandbox(id: string, owner: string, view: Record<string, unknown>): Promise<{ claimed: boolean; node: string }> {
    const key = SANDBOXES + id;
    const txn = await answered(
      this.etcd
        .if(key, 'Create', '==', 0)
        .then(this.etcd.put(key).value(JSON.stringify({ node: this.selfId, owner, view } satisfies NotedSandbox)))
        .else(this.etcd.get(key))
        .commit(),
      CALL_MS,
      'claiming a name',
    );
    if (txn.succeeded) return { claimed: true, node: this.selfId };
    const raw = txn.responses[0]?.response_range?.kvs[0]?.value.toString();
    const node = raw ? (JSON.parse(raw) as NotedSandbox).node : this.selfId;
    return { claimed: node === this.selfId, node };
  }

  async lostSandboxes(): Promise<NotedSandbox[]> {
    const down = new Set((await this.list()).filter((n) => n.state === 'down').map((n) => n.id));
    if (!down.size) return [];
    const notes = await answered(this.etcd.getAll().prefix(SANDBOXES).strings(), CALL_MS, 'listing sandboxes');
    return Object.values(notes)
      .map((raw) => JSON.parse(raw) as NotedSandbox)
      .filter((n) => down.has(n.node) && n.view !== undefined);
  }

  async sandboxHome(id: string): Promise<{ node: string; owner: string } | null> {
    const raw = await answered(this.etcd.get(SANDBOXES + id).string(), CALL_MS, 'finding a sandbox');
    return raw ? (JSON.parse(raw) as { node: string; owner: string }) : null;
  }

  isPeer(token: string): boolean {
    const a = Buffer.from(token);
    const b = Buffer.from(this.token);
    return this.token !== '' && a.length === b.length && timingSafeEqual(a, b);
  }

  peerToken(): string {
    return this.token;
  }

  /** Leave: revoke the lease (the client does not on close), so the node is down at once. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    await this.watch?.close();
    try {
      if (this.lease) await answered(this.lease.revoke(), 2000, 'revoking the lease');
    } catch (e) {
      log.warn(`leaving the cluster: ${errorMessage(e)} (the lease ends on its own within ${this.opts.ttl} s)`, {
        node: this.opts.id,
      });
    }
    this.etcd.close();
  }

  private view(m: Member, report: NodeReport | null): NodeView {
    const self = m.id === this.selfId;
    return {
      id: m.id,
      address: m.address,
      tags: m.tags,
      state: report === null ? 'down' : m.draining ? 'draining' : 'up',
      fenced: self && this.fenced,
      self,
      joinedAt: m.joinedAt,
      report,
    };
  }

  /** The cluster's secret, made by the first node that joins (peers prove themselves with it). */
  private async ensureSecret(): Promise<Buffer> {
    const fresh = randomBytes(32).toString('base64');
    await this.etcd.if(SECRET, 'Create', '==', 0).then(this.etcd.put(SECRET).value(fresh)).commit();
    const secret = await this.etcd.get(SECRET).string();
    if (!secret) throw new RealmError('CLUSTER_UNAVAILABLE', 'etcd lost the cluster secret just written; check etcd');
    return Buffer.from(secret, 'base64');
  }

  /**
   * This node's member key, updated; made when it first joins. The first node of a cluster founds
   * it; any later one must bring an invite (`realm cluster invite`), used up in the same
   * transaction that enrolls it. A node enrolled before needs none.
   */
  private async upsertMember(): Promise<void> {
    const key = NODES + this.opts.id;
    const raw = await this.etcd.get(key).string();
    const old = raw ? (JSON.parse(raw) as Member) : null;
    const m: Member = {
      id: this.opts.id,
      address: this.opts.address(),
      tags: this.opts.tags.length || !old ? retag([], this.opts.tags, []) : old.tags,
      draining: old?.draining ?? false,
      joinedAt: old?.joinedAt ?? new Date().toISOString(),
    };
    const value = JSON.stringify(m);
    if (old) {
      await this.etcd.put(key).value(value);
      return;
    }
    const founded = await this.etcd
      .if(FOUNDED, 'Create', '==', 0)
      .then(this.etcd.put(FOUNDED).value(this.opts.id), this.etcd.put(key).value(value))
      .commit();
    if (founded.succeeded) return;
    if (!this.opts.join)
      throw new RealmError(
        'JOIN_REFUSED',
        `node ${this.opts.id} is not a member of this cluster yet: run \`realm cluster invite\` on a node of it and start this one with --join TOKEN`,
      );
    const invite = INVITES + inviteKey(this.opts.join);
    const used = await this.etcd
      .if(invite, 'Create', '>', 0)
      .then(this.etcd.delete().key(invite), this.etcd.put(key).value(value))
      .commit();
    if (!used.succeeded)
      throw new RealmError(
        'JOIN_REFUSED',
        'that invite is not valid here: it was used already, it expired, or it is mistyped; make another with `realm cluster invite`',
      );
  }

  /** A one-time token that enrolls one new node, valid for `ttlSeconds`. */
  async invite(ttlSeconds: number): Promise<{ token: string; expiresAt: string }> {
    const token = `rlminv_${randomBytes(24).toString('base64url')}`;
    const lease = this.etcd.lease(ttlSeconds, { autoKeepAlive: false });
    const id = await answered(lease.grant(), CALL_MS, 'making an invite');
    await answered(
      this.etcd
        .put(INVITES + inviteKey(token))
        .value(this.selfId)
        .lease(id)
        .exec(),
      CALL_MS,
      'making an invite',
    );
    lease.release();
    return { token, expiresAt: new Date(Date.now() + ttlSeconds * 1000).toISOString() };
  }

  /** Read-modify-write of a member key, retried when another writer got there first. */
  private async edit(id: string, change: (m: Member) => Member): Promise<void> {
    const key = NODES + id;
    for (let i = 0; i < 10; i++) {
      const res = await answered(this.etcd.get(key).exec(), CALL_MS, 'reading the node');
      const kv = res.kvs[0];
      if (!kv) throw notFound(id);
      const next = change(JSON.parse(kv.value.toString()) as Member);
      const txn = await answered(
        this.etcd
          .if(key, 'Mod', '==', kv.mod_revision)
          .then(this.etcd.put(key).value(JSON.stringify(next)))
          .commit(),
        CALL_MS,
        'writing the node',
      );
      if (txn.succeeded) {
        this.cached = undefined;
        return;
      }
    }
    throw new RealmError('CLUSTER_UNAVAILABLE', `node ${id} kept changing under this edit; try again`);
  }

  /**
   * A lease and the alive key under it. Refused while another process holds this node's id (its
   * alive key stands under a lease that is not ours): after a crash that lease ends within the TTL,
   * so wait that long first.
   */
  private async takeLease(): Promise<void> {
    const key = ALIVE + this.opts.id;
    // The report first: the lease is granted (and its clock runs) as soon as it is made.
    const report = JSON.stringify(await this.opts.report());
    // The lease is granted as it is made: alive from now (at etcd, from a moment later).
    const created = Date.now();
    const lease = this.etcd.lease(this.opts.ttl, { autoKeepAlive: true });
    let renewed = created;
    lease.on('keepaliveFired', () => {
      this.ask();
      this.firedAt ??= Date.now();
    });
    // A new keepalive stream: what was sent on the broken one will not be answered.
    lease.on('keepaliveEstablished', () => (this.firedAt = undefined));
    lease.on('keepaliveSucceeded', () => {
      this.answer();
      renewed = Math.max(renewed, this.firedAt ?? Date.now());
      this.firedAt = undefined;
      if (this.lease === lease) this.aliveAt = Math.max(this.aliveAt, renewed);
    });
    lease.on('lost', (e) => {
      if (this.closed) return;
      log.warn(`the cluster lease was lost (${e.message}); rejoining when etcd answers`, { node: this.opts.id });
      void this.rejoin();
    });
    const deadline = Date.now() + (this.opts.ttl + 2) * 1000;
    let id: string;
    for (;;) {
      id = await answered(lease.grant(), CALL_MS, 'granting a lease');
      const txn = await answered(
        this.etcd.if(key, 'Create', '==', 0).then(this.etcd.put(key).value(report).lease(id)).commit(),
        CALL_MS,
        'registering the node',
      );
      if (txn.succeeded) break;
      if (Date.now() > deadline) {
        await lease.revoke().catch(() => undefined);
        throw new RealmError(
          'CLUSTER_UNAVAILABLE',
          `node id ${this.opts.id} is already up in this cluster (another daemon?); give this one its own --node-id`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
    this.lease = lease;
    this.leaseId = id;
    this.firedAt = undefined;
    this.aliveAt = renewed;
    this.answer();
    for (const f of this.leaseListeners) f();
  }

  private async refresh(): Promise<void> {
    if (this.closed || this.rejoining || !this.lease) return;
    try {
      const report = JSON.stringify(await this.opts.report());
      this.ask();
      const sent = Date.now();
      await answered(
        this.lease
          .put(ALIVE + this.opts.id)
          .value(report)
          .exec(),
        CALL_MS,
        'refreshing the report',
      );
      this.answer();
      this.aliveAt = Math.max(this.aliveAt, sent);
    } catch {
      // etcd not answering: the fence (by time) says so; the lease's own loop reports a loss.
    }
  }

  private async rejoin(): Promise<void> {
    if (this.rejoining) return;
    this.rejoining = true;
    this.lease = undefined;
    while (!this.closed) {
      try {
        await answered(this.upsertMember(), CALL_MS, 'at rejoin');
        await this.takeLease();
        log.info('rejoined the cluster', { node: this.opts.id });
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
    this.rejoining = false;
  }
}
