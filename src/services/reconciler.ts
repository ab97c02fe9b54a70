/**
 * The reconciler of one node: a loop that makes the running replicas of every service match its
 * desired state (desired.ts). Each replica is a namespace sandbox without a time to live, running
 * the service's command as a background process (engine/processes.ts). A replica whose process
 * exited, or whose sandbox is gone, is a crash: it is removed and a new one started after the
 * service's back-off delay (restart policy, spec.ts). A push or `svc restart` moves the
 * generation on and rolls it out (rollout.ts: one replica at a time, rolled back when a new one
 * fails); replicas taken out of service are drained of their requests before they go.
 * Health checks (HTTP or TCP, through the replica proxy) decide which replicas get traffic.
 */
import { randomBytes } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { ExitInfo } from '../drivers/driver.js';
import { createSandboxSchema, startProcessSchema } from '../engine/schemas.js';
import { errorMessage } from '../util/errors.js';
import type { DesiredServices } from './desired.js';
import type { ReplicaProxy } from './replica-proxy.js';
import type { ReplicaMounts } from '../packages/replica-mounts.js';
import { ServiceLogs } from './logs.js';
import { rolloutStep } from './rollout.js';
import type { ServiceRecord } from './spec.js';
import { log } from '../logs/log.js';

/** How often the loop looks when nothing told it to (crashes and changes wake it at once). */
const TICK_MS = 1_000;
/** A new replica is checked this often until its first pass. */
const STARTUP_CHECK_MS = 250;
/** A replica that ran this long before it crashed resets the back-off delay. */
const STABLE_MS = 10 * 60_000;
/** The longest a retired replica waits for its requests to be answered. */
const DRAIN_MS = 30_000;
/** The label that marks a service's replica sandboxes. */
export const SERVICE_LABEL = 'realm.service';

export interface Replica {
  id: string;
  generation: number;
  sandboxId: string;
  processId: string;
  startedAt: number;
  /** Gets traffic: its last check passed (or it has not failed `threshold` times since). */
  healthy: boolean;
  /** Consecutive failed checks. */
  failures: number;
  /** Since when its checks have passed without a break (0: not healthy now). */
  healthySince: number;
  /** A check passed once. */
  everHealthy: boolean;
  /** Requests the gateway is passing to it now (a retired replica waits for them). */
  inflight: number;
  /** Told when `inflight` drops to 0. */
  idle?: (() => void) | undefined;
  nextCheckAt: number;
  checking: boolean;
  /** Set when its process ended. */
  exit: ExitInfo | null;
  stopFollow: () => void;
}

export interface ServiceState {
  replicas: Replica[];
  /** Replicas restarted after a crash, since this daemon started or the service was pushed. */
  restarts: number;
  lastError: string | null;
  /** The back-off delay the next crash waits. */
  delay: number;
  /** No replacement starts before this (ms since epoch). */
  notBefore: number;
  /** Replicas being started now. */
  starting: number;
  /** A new replica of this generation crashed or could not start while it rolled out. */
  failure?: { generation: number; reason: string } | undefined;
  /** Why the replicas are held stopped now (DesiredSource.held); undefined when they are not. */
  held?: string | undefined;
  /** Retired replicas on their way out (draining, then their sandbox destroyed). */
  gone: Set<Promise<void>>;
  logs: ServiceLogs;
}

/**
 * What the reconciler runs: every service's desired state (desired.ts) on a node alone; in a
 * cluster, this node's share of each (cluster/service-cluster.ts).
 */
export type DesiredSource = Pick<DesiredServices, 'all' | 'event' | 'finishRollout' | 'rollback' | 'onChange'> & {
  /**
   * Why this node must run none of the service's replicas now and start none (a cluster's node cut
   * off from etcd past the service's disconnect.stopAfter), or null. Its replicas stop at once.
   */
  held?: (name: string) => string | null;
};

export class Reconciler {
  private readonly states = new Map<string, ServiceState>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Round-robin positions of the gateway's picks. */
  private readonly turn = new Map<string, number>();
  /** Told after each pass (a cluster reports the replicas here to the others). */
  afterPass: (() => void) | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly desired: DesiredSource,
    readonly proxy: ReplicaProxy,
    /** A packaged service's mounts per replica (packages/replica-mounts.ts). */
    private readonly mounts: ReplicaMounts,
  ) {
    desired.onChange = () => this.kick();
  }

  /** Remove replicas a previous daemon left (their processes did not survive it), then start the loop. */
  async start(): Promise<void> {
    for (const sb of await this.engine.listSandboxes())
      if (sb.labels[SERVICE_LABEL] !== undefined) await this.engine.destroySandbox(sb.id).catch(() => undefined);
    await this.mounts.sweep();
    this.timer = setInterval(() => this.kick(), TICK_MS);
    this.timer.unref();
    this.kick();
  }

  /** Run one pass now (or right after the one under way). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((e: unknown) => log.error(`services: ${errorMessage(e)}`, { err: e }))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Wait until a pass saw the desired state as it is now. */
  async settle(): Promise<void> {
    if (this.running) await this.running;
    this.kick();
    if (this.running) await this.running;
  }

  state(name: string): ServiceState | undefined {
    return this.states.get(name);
  }

  /**
   * A healthy replica of the service for one request, in turn (undefined when none is), held for
   * it: the caller calls `release` when the request is over, so a retired replica waits for it.
   */
  pick(name: string): Replica | undefined {
    // Every request through the gateway comes here: counted in place, no array made.
    const all = this.states.get(name)?.replicas;
    let count = 0;
    for (const r of all ?? []) if (r.healthy && !r.exit) count++;
    if (!all || !count) return undefined;
    const n = (this.turn.get(name) ?? 0) + 1;
    this.turn.set(name, n);
    let k = n % count;
    for (const r of all)
      if (r.healthy && !r.exit && k-- === 0) {
        r.inflight++;
        return r;
      }
    return undefined;
  }

  /** The request a `pick` was for is over. */
  release(r: Replica): void {
    if (--r.inflight <= 0) {
      r.inflight = 0;
      r.idle?.();
    }
  }

  /** `r` is the service's one replica in service (the gateway's relay keeps a connection on a replica only then). */
  sole(name: string, r: Replica): boolean {
    let n = 0;
    for (const x of this.states.get(name)?.replicas ?? [])
      if (x.healthy && !x.exit) {
        if (x !== r) return false;
        n++;
      }
    return n === 1;
  }

  /** Count a request on `r` as pick() does (one the relay thread may send: released on its hand-back). */
  occupy(r: Replica): void {
    r.inflight++;
  }

  /** A replica failed a request: it gets no traffic until its next check passes (checked at once). */
  suspect(name: string, r: Replica): void {
    if (!this.states.get(name)?.replicas.includes(r)) return;
    r.healthy = false;
    r.nextCheckAt = 0;
    this.kick();
  }

  private stateOf(rec: ServiceRecord): ServiceState {
    let st = this.states.get(rec.spec.name);
    if (!st) {
      st = {
        replicas: [],
        restarts: 0,
        lastError: null,
        delay: rec.spec.restart.delay,
        notBefore: 0,
        starting: 0,
        gone: new Set(),
        logs: new ServiceLogs(),
      };
      this.states.set(rec.spec.name, st);
    }
    return st;
  }

  private async pass(): Promise<void> {
    const wanted = new Map(this.desired.all().map((r) => [r.spec.name, r]));
    const work: Promise<unknown>[] = [];
    for (const [name, st] of this.states) {
      if (wanted.has(name)) continue;
      // Removed: every replica goes, then the state.
      await Promise.all([...st.replicas].map((r) => this.stop(st, r)));
      await this.retired(st);
      if (!st.starting) {
        st.logs.close();
        this.states.delete(name);
        this.turn.delete(name);
      }
    }
    for (const rec of wanted.values()) work.push(this.reconcile(rec));
    await Promise.all(work);
    this.afterPass?.();
  }

  private async reconcile(rec: ServiceRecord): Promise<void> {
    const st = this.stateOf(rec);
    const { spec } = rec;
    const now = Date.now();
    if (st.failure && st.failure.generation !== rec.generation) st.failure = undefined;
    const held = this.desired.held?.(spec.name) ?? null;
    if (held !== null) return this.hold(rec, st, held);
    st.held = undefined;
    // Crashed replicas: a process that exited, a sandbox that is gone or not running.
    for (const r of [...st.replicas]) {
      const why = r.exit
        ? `replica ${r.id} exited (${r.exit.signal ? `signal ${r.exit.signal}` : `exit code ${String(r.exit.exitCode)}`})`
        : await this.engine.getSandbox(r.sandboxId).then(
            (sb) => (sb.status === 'running' ? null : `replica ${r.id}'s sandbox is ${sb.status}`),
            () => `replica ${r.id}'s sandbox is gone`,
          );
      if (!why) continue;
      await this.stop(st, r);
      if (r.generation !== rec.generation) continue;
      st.restarts++;
      st.lastError = why;
      // A new replica that crashes stops its rollout; with a generation to go back to, it is not restarted.
      if (rec.rollout) st.failure ??= { generation: rec.generation, reason: why };
      if (rec.rollout?.from) continue;
      st.logs.add(r.id, 'realm', `${why}; restarting in ${st.delay} ms\n`);
      this.desired.event(rec, 'service.replica.exited', { replica: r.id, reason: why, restartInMs: st.delay }, r.sandboxId);
      if (now - r.startedAt >= STABLE_MS) st.delay = spec.restart.delay;
      st.notBefore = now + st.delay;
      st.delay = Math.min(Math.max(st.delay * 2, 1), Math.max(spec.restart.maxDelay, spec.restart.delay));
      setTimeout(() => this.kick(), st.notBefore - now + 1).unref();
    }
    const current = st.replicas.filter((r) => r.generation === rec.generation);
    const old = st.replicas.filter((r) => r.generation !== rec.generation);
    if (rec.rollout) {
      const step = rolloutStep(rec, st.replicas, st.starting, Date.now(), st.failure?.reason);
      if (step.kind === 'fail') return await this.failRollout(rec, st, step.reason);
      if (step.launch && (rec.rollout.from || Date.now() >= st.notBefore))
        for (let i = 0; i < step.launch; i++) void this.launch(rec, st);
      for (const r of step.stop) this.retire(st, r);
      if (step.done && (await this.desired.finishRollout(spec.name, rec.generation, 'rolled-out')))
        st.logs.add(spec.name, 'realm', `generation ${rec.generation} rolled out\n`);
    } else {
      const missing = spec.replicas - current.length - st.starting;
      if (missing > 0 && Date.now() >= st.notBefore) for (let i = 0; i < missing; i++) void this.launch(rec, st);
      // Other generations' replicas (a rolled-back one's): the unhealthy go now, the rest once this one is as healthy as wanted.
      const enough = current.filter((r) => r.healthy).length >= Math.min(spec.replicas, current.length) && !st.starting;
      for (const r of old) if (enough || !r.healthy) this.retire(st, r);
    }
    if (current.length > spec.replicas) {
      // Fewest lost: the unhealthy and the newest go first.
      const extra = [...current].sort((a, b) => Number(a.healthy) - Number(b.healthy) || b.startedAt - a.startedAt);
      for (const r of extra.slice(0, current.length - spec.replicas)) this.retire(st, r);
    }
    for (const r of st.replicas) if (!r.checking && !r.exit && Date.now() >= r.nextCheckAt) void this.check(rec, r);
  }

  /**
   * Stop every replica of `rec` at once (no draining: another copy may be starting elsewhere) and
   * start none; said once per hold, in the service's last error, its log and an event per replica.
   */
  private async hold(rec: ServiceRecord, st: ServiceState, why: string): Promise<void> {
    const stopping = [...st.replicas];
    st.held = why;
    // Said where replicas were stopped (a node that ran none has nothing to report).
    if (stopping.length) st.lastError = why;
    await Promise.all(stopping.map((r) => this.stop(st, r)));
    for (const r of stopping) {
      st.logs.add(r.id, 'realm', `replica ${r.id} stopped: ${why}\n`);
      this.desired.event(rec, 'service.replica.stopped', { replica: r.id, generation: r.generation, reason: why }, r.sandboxId);
    }
  }

  /** The rollout of `rec` failed: back to the generation it replaced, or (none) marked failed and left to restart. */
  private async failRollout(rec: ServiceRecord, st: ServiceState, reason: string): Promise<void> {
    const g = rec.generation;
    st.failure = undefined;
    if (rec.rollout?.from && (await this.desired.rollback(rec.spec.name, g, reason))) {
      st.lastError = `generation ${g} rolled back to ${rec.rollout.from.generation}: ${reason}`;
      st.notBefore = 0;
    } else if (await this.desired.finishRollout(rec.spec.name, g, 'failed', reason))
      st.lastError = `generation ${g} failed: ${reason}`;
    else return;
    st.logs.add(rec.spec.name, 'realm', `${st.lastError}\n`);
  }

  /** Start one replica: its sandbox, then the command in it. */
  private async launch(rec: ServiceRecord, st: ServiceState): Promise<void> {
    const { spec } = rec;
    const id = `${spec.name}-${randomBytes(3).toString('hex')}`;
    st.starting++;
    let sandboxId: string | undefined;
    let placed = false;
    try {
      const { binds, volumes } = await this.mounts.prepare(rec.package, id, { owner: rec.owner, service: spec.name });
      const opts = createSandboxSchema.parse({
        image: spec.image,
        driver: 'namespace',
        memory: spec.memory,
        cpus: spec.cpus,
        pids: spec.pids,
        env: spec.env,
        volumes,
        ttl: 0,
      });
      opts.labels = { [SERVICE_LABEL]: spec.name, 'realm.replica': id };
      const sb = await this.engine.createSandbox(opts, false, rec.owner, undefined, binds);
      sandboxId = sb.id;
      const proc = await this.engine.startProcess(sb.id, startProcessSchema.parse({ command: spec.command }));
      const r: Replica = {
        id,
        generation: rec.generation,
        sandboxId: sb.id,
        processId: proc.id,
        startedAt: Date.now(),
        healthy: false,
        failures: 0,
        healthySince: 0,
        everHealthy: false,
        inflight: 0,
        nextCheckAt: 0,
        checking: false,
        exit: null,
        stopFollow: () => undefined,
      };
      r.stopFollow = this.engine.processes.follow(sb.id, proc.id, {
        chunk: (c) => st.logs.add(id, c.stream, c.text),
        end: (exit) => {
          r.exit = exit ?? { exitCode: null, signal: null, oomKilled: false, cpuMs: 0, memoryBytes: 0 };
          this.kick();
        },
      });
      // The service went (or the daemon is closing) while this replica started: it goes too.
      if (this.closed || this.states.get(spec.name) !== st) {
        r.stopFollow();
        return;
      }
      st.replicas.push(r);
      placed = true;
      sandboxId = undefined;
      st.logs.add(id, 'realm', `replica ${id} started in sandbox ${sb.id}\n`);
      this.desired.event(rec, 'service.replica.started', { replica: id, generation: rec.generation }, sb.id);
    } catch (e) {
      st.lastError = `replica ${id} did not start: ${errorMessage(e)}`;
      st.logs.add(id, 'realm', `${st.lastError}\n`);
      this.desired.event(rec, 'service.replica.failed', { replica: id, reason: st.lastError });
      if (rec.rollout) st.failure ??= { generation: rec.generation, reason: st.lastError };
      const now = Date.now();
      st.notBefore = now + st.delay;
      st.delay = Math.min(Math.max(st.delay * 2, 1), Math.max(spec.restart.maxDelay, spec.restart.delay));
      setTimeout(() => this.kick(), st.notBefore - now + 1).unref();
    } finally {
      st.starting--;
      if (sandboxId) await this.engine.destroySandbox(sandboxId).catch(() => undefined);
      if (!placed) await this.mounts.release(id).catch(() => undefined);
    }
    this.kick();
  }

  /** One health check of a replica. */
  private async check(rec: ServiceRecord, r: Replica): Promise<void> {
    const { health, port } = rec.spec;
    r.checking = true;
    let ok = false;
    try {
      ok = await this.proxy.check(r.sandboxId, port, health.timeout, health.path);
    } catch {
      ok = false;
    }
    r.checking = false;
    const was = r.healthy;
    if (ok) {
      r.failures = 0;
      r.healthy = true;
      r.everHealthy = true;
      if (!was) r.healthySince = Date.now();
    } else if (++r.failures >= health.threshold || !was) r.healthy = false;
    if (!r.healthy) r.healthySince = 0;
    // Taken out of service (retired, crashed) while it was checked: it stays out.
    if (!this.state(rec.spec.name)?.replicas.includes(r)) {
      r.healthy = false;
      return;
    }
    // Until its first pass a replica is checked often, so it joins as soon as it listens.
    r.nextCheckAt =
      Date.now() + (r.healthy || r.failures >= health.threshold ? health.interval : Math.min(STARTUP_CHECK_MS, health.interval));
    if (was !== r.healthy) {
      this.state(rec.spec.name)?.logs.add(r.id, 'realm', `replica ${r.id} is ${r.healthy ? 'healthy' : 'unhealthy'}\n`);
      this.desired.event(
        rec,
        r.healthy ? 'service.replica.healthy' : 'service.replica.unhealthy',
        { replica: r.id, generation: r.generation },
        r.sandboxId,
      );
      this.kick();
    }
  }

  /** Remove a replica at once: its sandbox (with its processes and cgroups) and its pooled connections. */
  private async stop(st: ServiceState, r: Replica): Promise<void> {
    const i = st.replicas.indexOf(r);
    if (i < 0) return;
    st.replicas.splice(i, 1);
    r.healthy = false;
    r.stopFollow();
    this.proxy.forget(r.sandboxId);
    await this.engine.destroySandbox(r.sandboxId).catch(() => undefined);
    await this.mounts.release(r.id).catch(() => undefined);
  }

  /**
   * Take a replica out of service gently (an update, a scale down): out of the replica list now, so
   * it gets no new request, and gone once the requests it has are answered (or DRAIN_MS passed),
   * so none is cut off.
   */
  private retire(st: ServiceState, r: Replica): void {
    const i = st.replicas.indexOf(r);
    if (i < 0) return;
    st.replicas.splice(i, 1);
    r.healthy = false;
    const gone = (async () => {
      if (r.inflight > 0)
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, DRAIN_MS);
          r.idle = () => {
            clearTimeout(t);
            resolve();
          };
        });
      r.stopFollow();
      this.proxy.forget(r.sandboxId);
      await this.engine.destroySandbox(r.sandboxId).catch(() => undefined);
      await this.mounts.release(r.id).catch(() => undefined);
      st.logs.add(r.id, 'realm', `replica ${r.id} (generation ${r.generation}) stopped\n`);
    })();
    st.gone.add(gone);
    void gone.finally(() => st.gone.delete(gone));
  }

  /** Wait until the replicas being retired are gone. */
  private async retired(st: ServiceState): Promise<void> {
    while (st.gone.size) await Promise.all([...st.gone]);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.running;
    while ([...this.states.values()].some((s) => s.starting)) await new Promise((r) => setTimeout(r, 50));
    for (const st of this.states.values()) {
      await Promise.all([...st.replicas].map((r) => this.stop(st, r)));
      await this.retired(st);
      st.logs.close();
    }
    this.states.clear();
    this.proxy.close();
  }
}
