/**
 * Apps on the gateway (`realm push`): WASI preview 1 modules (CGI) and wasi:http components kept under the data dir by sha256,
 * their records (limits, visibility, owner) in the store so they outlive a restart. A push is
 * checked before anything is kept: wasm at all, and loadable (a component: checkComponent) — a module
 * is instantiated once in a sandboxed runner with the app's limits and a fuel budget of 1, so its
 * imports are linked and its memory checked without its code running past its first instruction.
 * In a cluster a push or removal is the cluster's (`shared`: cluster/apps-cluster.ts): written to
 * etcd first, then applied here; other nodes apply it through keep() and forget().
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import { mayUse } from '../engine/owner.js';
import { durationField, runSchema, sizeField } from '../engine/schemas.js';
import type { KeyWrites } from '../services/desired.js';
import type { AppRecord, Store } from '../store/store.js';
import { RealmError } from '../util/errors.js';
import { checkComponent } from './http-component-pool.js';

const MiB = 1024 ** 2;

/** Runners per app unless its push says (`--replicas`): the machines realm runs on have a few cores. */
export const DEFAULT_REPLICAS = 2;
/** The most runners an app may ask for: each is a process with its own memory cap. */
export const MAX_REPLICAS = 16;

/** An app's name: one path segment of the gateway's URLs. */
export const APP_NAME = /^[a-z0-9][a-z0-9-]{0,62}$/;

export const pushAppSchema = z
  .object({
    name: z.string().max(256),
    /** The module's or component's bytes, base64 (up to 12 MiB). */
    module: z.string().max(16 * MiB),
    /** The memory cap of each request's instance (default 64m). */
    memory: sizeField(MiB, 4096 * MiB).default(64 * MiB),
    /** Wasmtime fuel per request; none by default. */
    fuel: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
    /** Each request's deadline (default 10s). */
    timeout: durationField(1, 600_000).default(10_000),
    visibility: z.enum(['local', 'public']).default('local'),
    /** Runners of the app: how many of its requests run at once (each still in an instance of its own). */
    replicas: z.number().int().min(1).max(MAX_REPLICAS).default(DEFAULT_REPLICAS),
  })
  .strict();
export type PushAppInput = z.input<typeof pushAppSchema>;

const MODULE_HEADER = Buffer.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
const MAGIC = MODULE_HEADER.subarray(0, 4);

/** What the bytes are: a core module, a component (layer 1), or not wasm. */
export function wasmKind(bytes: Buffer): 'module' | 'component' | 'other' {
  if (bytes.length < 8 || !bytes.subarray(0, 4).equals(MAGIC)) return 'other';
  if (bytes.subarray(4, 8).equals(MODULE_HEADER.subarray(4, 8))) return 'module';
  return bytes[6] === 1 && bytes[7] === 0 ? 'component' : 'other';
}

/** What the gateway saw of an app's requests since it was pushed (or since this daemon started). */
export interface AppStats {
  requests: number;
  /** Requests answered with a gateway error (the app trapped, passed its deadline, ran out of fuel or memory, answered no response). */
  failed: number;
  /** The most memory one request's instance grew to, bytes (null before any request reported one). */
  memoryPeakBytes: number | null;
}

/**
 * The cluster's copy of the apps (cluster/apps-cluster.ts), when this node is a member: a push or
 * removal is written there first (compared with the version this node knows: a change another node
 * made meanwhile is refused), and every node applies it.
 */
export interface SharedApps {
  /** Write the record, its module's bytes in the peers' reach; throws when another node changed the app meanwhile. */
  put(rec: AppRecord, bytes: Buffer, held: AppRecord | null): Promise<void>;
  delete(rec: AppRecord): Promise<void>;
  /** Wait (at most `ms`) until this node has every app change the cluster answered before now. */
  caughtUp?(ms: number): Promise<void>;
  /**
   * These pushes and removals as writes for another's transaction (a signed manifest's, with its
   * services), each compared with the version this node knows; the modules are put in the peers'
   * reach first. After the transaction: `done` when it was written, `abort` when not.
   */
  prepare?(
    puts: { rec: AppRecord; bytes: Buffer; held: AppRecord | null }[],
    removes: AppRecord[],
  ): Promise<{ writes: KeyWrites; done: (revision: string) => void; abort: () => void }>;
}

export class Apps {
  /** Set on a cluster member: pushes and removals are the cluster's. */
  shared: SharedApps | undefined;
  private readonly dir: string;
  /** Per app name, reset at each push and removal (kept in memory: figures of this daemon's run). */
  private readonly counts = new Map<string, AppStats>();
  /** The records the gateway served, by name: a request reads no database (every change goes through push/keep/forget). */
  private readonly served = new Map<string, AppRecord>();
  /** Moves on at every push and removal: a lookup that read the store before one keeps nothing. */
  private changes = 0;
  /** Told the name of each app pushed again or removed (the gateway drops its runners). */
  onChange: ((name: string) => Promise<void>) | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly store: Store,
    dataDir: string,
  ) {
    this.dir = join(dataDir, 'apps');
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  /** The module file of an app. */
  modulePath(rec: AppRecord): string {
    return join(this.dir, `${rec.sha256}.wasm`);
  }

  module(rec: AppRecord): Buffer {
    return readFileSync(this.modulePath(rec));
  }

  /** Deploy (or replace one's own) app; nothing is kept unless every check passes. */
  push(input: z.output<typeof pushAppSchema>, owner: string): Promise<AppRecord> {
    const { module, ...limits } = input;
    return this.pushModule(limits, Buffer.from(module, 'base64'), owner);
  }

  /**
   * Deploy an app from the module's bytes (a push, or a signed manifest's app). `checked`: the
   * caller ran check() on these bytes with these limits already (a manifest checks every app
   * before it changes anything).
   */
  async pushModule(
    input: Omit<z.output<typeof pushAppSchema>, 'module'>,
    bytes: Buffer,
    owner: string,
    checked = false,
  ): Promise<AppRecord> {
    // In a cluster: compared with the app as the cluster has it now, not a view a moment behind.
    await this.caughtUp();
    const { rec, held } = await this.record(input, bytes, owner, checked);
    await this.shared?.put(rec, bytes, held);
    await this.keep(rec, bytes, held);
    return rec;
  }

  /**
   * The record a push of these bytes makes, and the app it replaces (null: none), after every
   * check; nothing is written. The caller caught up with the cluster first (caughtUp()). A signed
   * manifest in a cluster writes the records of all its apps in its own transaction, then keeps
   * them (keep()).
   */
  async record(
    input: Omit<z.output<typeof pushAppSchema>, 'module'>,
    bytes: Buffer,
    owner: string,
    checked = false,
  ): Promise<{ rec: AppRecord; held: AppRecord | null }> {
    if (!APP_NAME.test(input.name)) {
      throw new RealmError(
        'APP_INVALID',
        `"${input.name}" is not an app name: use 1-63 of a-z, 0-9 and -, starting with a letter or digit (it is a URL path segment)`,
      );
    }
    const held = await this.store.getApp(input.name);
    if (held && !mayUse(owner, held.owner))
      throw new RealmError('APP_NAME_TAKEN', `the app name "${input.name}" is taken by another user; pick another name`);
    if (!checked) await this.check(bytes, input.memory, owner);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const rec: AppRecord = {
      name: input.name,
      sha256,
      size: bytes.length,
      memoryBytes: input.memory,
      ...(input.fuel ? { fuel: input.fuel } : {}),
      timeoutMs: input.timeout,
      visibility: input.visibility,
      replicas: input.replicas,
      createdAt: Date.now(),
      owner: held?.owner ?? owner,
    };
    return { rec, held: held ?? null };
  }

  /** Keep the module and the record, and serve it (a push here, or one another cluster node made). */
  async keep(rec: AppRecord, bytes: Buffer, held: AppRecord | null): Promise<void> {
    const file = this.modulePath(rec);
    if (!existsSync(file)) {
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, bytes, { mode: 0o600 });
      renameSync(tmp, file);
    }
    await this.store.putApp(rec);
    this.engine.events.emit({
      type: 'app.pushed',
      owner: rec.owner,
      ids: { app: rec.name },
      data: { sha256: rec.sha256, replicas: rec.replicas },
    });
    this.served.delete(rec.name);
    this.counts.delete(rec.name);
    this.changes++;
    await this.onChange?.(rec.name);
    if (held && held.sha256 !== rec.sha256) await this.dropModule(held.sha256);
  }

  /** The app as this node keeps it, whoever's (null: none). */
  held(name: string): Promise<AppRecord | null> {
    return this.store.getApp(name);
  }

  /** Refuse bytes that are not an app: not wasm, or a module or component that does not load with this memory. */
  async check(bytes: Buffer, memoryBytes: number, owner: string): Promise<void> {
    const kind = wasmKind(bytes);
    if (kind === 'other')
      throw new RealmError(
        'APP_INVALID',
        'the file is not WebAssembly (no \\0asm header); push a .wasm module built for wasm32-wasi',
      );
    // A component must be a wasi:http/incoming-handler (http-component-pool.ts); a module speaks CGI.
    if (kind === 'component') await checkComponent(this.engine, bytes, memoryBytes, owner);
    else await this.validate(bytes, memoryBytes);
  }

  /** The bytes of a module this node keeps for some app, by sha256 (hex); undefined when it has none. */
  moduleBySha(sha256: string): Buffer | undefined {
    if (!/^[0-9a-f]{64}$/.test(sha256)) return undefined;
    try {
      return readFileSync(join(this.dir, `${sha256}.wasm`));
    } catch {
      return undefined;
    }
  }

  /** Every app on the node, whoever's (signed manifests: the node admin's view). */
  all(): Promise<AppRecord[]> {
    return this.store.listApps();
  }

  /** Instantiate the module once with its limits; a fuel budget of 1 stops it at its first instruction. */
  private async validate(bytes: Buffer, memoryBytes: number): Promise<void> {
    const result = await this.engine.run(
      runSchema.parse({
        language: 'wasm',
        files: [{ name: 'main.wasm', content: bytes.toString('base64'), encoding: 'base64' }],
        memory: Math.max(memoryBytes, 16 * MiB),
        fuel: 1,
        timeout: 10_000,
      }),
      undefined,
      undefined,
      // A check of the push, not a run anyone asked for: no run.finished event.
      { internal: true },
    );
    if (result.verdict === 'fuel-exhausted') return;
    const why = result.stderr.trim().split('\n').slice(-3).join(' ').slice(0, 2000);
    throw new RealmError(
      'APP_INVALID',
      `the module does not load in realm's WASI preview 1 runner (${result.verdict}): ${why || 'no message'}; a module may import only wasi_snapshot_preview1 and must export _start`,
    );
  }

  /** The records the principal may see. */
  async list(who: string): Promise<AppRecord[]> {
    return (await this.store.listApps()).filter((a) => mayUse(who, a.owner));
  }

  /** One app, or APP_NOT_FOUND (also for another user's: names do not leak). */
  async get(name: string, who?: string): Promise<AppRecord> {
    const rec = await this.store.getApp(name);
    if (!rec || (who !== undefined && !mayUse(who, rec.owner)))
      throw new RealmError('APP_NOT_FOUND', `no app "${name}"; \`realm push ls\` lists them`);
    return rec;
  }

  /** The app to serve for a gateway request (no owner: the gateway serves by visibility). */
  async lookup(name: string): Promise<AppRecord | null> {
    if (!APP_NAME.test(name)) return null;
    const known = this.served.get(name);
    if (known) return known;
    // Only apps that exist are kept: names asked for at random do not grow the map.
    const seen = this.changes;
    const rec = await this.store.getApp(name);
    if (rec && seen === this.changes) this.served.set(name, rec);
    return rec;
  }

  /** The app's figures so far. */
  stats(name: string): AppStats {
    return { ...(this.counts.get(name) ?? { requests: 0, failed: 0, memoryPeakBytes: null }) };
  }

  /** Count one request the gateway answered (`memoryBytes`: what its instance grew to, when the runner said). */
  noteRequest(name: string, ok: boolean, memoryBytes: number | undefined): void {
    let c = this.counts.get(name);
    if (!c) this.counts.set(name, (c = { requests: 0, failed: 0, memoryPeakBytes: null }));
    c.requests++;
    if (!ok) c.failed++;
    if (memoryBytes !== undefined && memoryBytes > (c.memoryPeakBytes ?? -1)) c.memoryPeakBytes = memoryBytes;
  }

  /** In a cluster: wait (at most `ms`) until every app change answered before now has reached this node. */
  async caughtUp(ms = 3000): Promise<void> {
    await this.shared?.caughtUp?.(ms);
  }

  async remove(name: string, who: string): Promise<void> {
    await this.caughtUp();
    const rec = await this.get(name, who);
    await this.shared?.delete(rec);
    await this.forget(rec);
  }

  /** Stop serving the app and forget it (a removal here, or one another cluster node made). */
  async forget(rec: AppRecord): Promise<void> {
    const name = rec.name;
    await this.store.deleteApp(name);
    this.engine.events.emit({ type: 'app.removed', owner: rec.owner, ids: { app: name } });
    this.served.delete(name);
    this.counts.delete(name);
    this.changes++;
    await this.onChange?.(name);
    await this.dropModule(rec.sha256);
  }

  /** Remove a module file no app uses any more. */
  private async dropModule(sha256: string): Promise<void> {
    if ((await this.store.listApps()).some((a) => a.sha256 === sha256)) return;
    rmSync(join(this.dir, `${sha256}.wasm`), { force: true });
  }
}
