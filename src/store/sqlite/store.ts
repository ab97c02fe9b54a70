/**
 * The single-node store: one SQLite file in the data dir, WAL mode, schema migrated on open. The
 * file and its WAL are root's alone (0600), and injected secrets in it are sealed (secrets.ts).
 */
import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { DriverName, DriverState } from '../../drivers/driver.js';
import type { AppRecord, SandboxRecord, Store, TokenRecord, UiSessionRecord, VolumeRecord } from '../store.js';
import { ENDED, type JobRecord, type JobRunRecord } from '../../jobs/records.js';
import { markWorkspaceVolume, migrateLegacyWorkspace } from '../migrate.js';
import { SecretBox } from '../secrets.js';
import { log } from '../../logs/log.js';

type Inject = NonNullable<SandboxRecord['inject']>[number];
/** An injection as stored: its value sealed (or, written by an older realm, in clear). */
type StoredInject = Omit<Inject, 'value'> & { value?: string; sealed?: string };

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS sandboxes (
     id TEXT PRIMARY KEY,
     name TEXT UNIQUE,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS volumes (
     name TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS apps (
     name TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS tokens (
     id TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS jobs (
     name TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  // A run's state is a column so that an ended run is never written again (see putJobRun).
  `CREATE TABLE IF NOT EXISTS job_runs (
     id TEXT PRIMARY KEY,
     job TEXT NOT NULL,
     n INTEGER NOT NULL,
     state TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS job_runs_by_job ON job_runs (job, n)`,
  // Dashboard sessions by the sha256 of the cookie's secret: a restart signs no one out.
  `CREATE TABLE IF NOT EXISTS ui_sessions (
     digest TEXT PRIMARY KEY,
     token_id TEXT,
     created_at INTEGER NOT NULL,
     expires_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS ui_sessions_by_token ON ui_sessions (token_id)`,
];

/** A driver's `decodeState`, found by the record's driver name. */
export type DecodeState = (driver: DriverName, raw: DriverState) => DriverState;

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;
  private readonly box: SecretBox;
  private readonly decodeState: DecodeState | undefined;

  /**
   * `keyFile`: where the key that seals secrets is kept (default secret.key beside the database).
   * `decodeState`: gives a sandbox's driver state read back here its driver's type, once (see
   * `opaque` in drivers/driver.ts).
   */
  constructor(file: string, opts: { keyFile?: string; decodeState?: DecodeState } = {}) {
    this.decodeState = opts.decodeState;
    // SQLite gives the WAL and shared-memory files the database file's mode: made 0600 first,
    // they are all root's alone (an older realm left 0644 ones: narrowed too).
    closeSync(openSync(file, 'a', 0o600));
    for (const f of [file, `${file}-wal`, `${file}-shm`, `${file}-journal`]) if (existsSync(f)) chmodSync(f, 0o600);
    this.box = SecretBox.load(opts.keyFile ?? join(dirname(file), 'secret.key'));
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    // What a record held before it was rewritten is zeroed, not left in free space.
    this.db.pragma('secure_delete = ON');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    for (const s of SCHEMA) this.db.exec(s);
    this.stmts = this.prepare();
    this.migrate();
    this.sealOlderRecords();
  }

  private prepare() {
    return {
      putSandbox: this.db.prepare('INSERT OR REPLACE INTO sandboxes (id, name, created_at, body) VALUES (?, ?, ?, ?)'),
      getSandbox: this.db.prepare<[string], { body: string }>('SELECT body FROM sandboxes WHERE id = ?'),
      getSandboxByName: this.db.prepare<[string], { body: string }>('SELECT body FROM sandboxes WHERE name = ?'),
      listSandboxes: this.db.prepare<[], { body: string }>('SELECT body FROM sandboxes ORDER BY created_at'),
      deleteSandbox: this.db.prepare('DELETE FROM sandboxes WHERE id = ?'),
      putVolume: this.db.prepare('INSERT OR REPLACE INTO volumes (name, created_at, body) VALUES (?, ?, ?)'),
      getVolume: this.db.prepare<[string], { body: string }>('SELECT body FROM volumes WHERE name = ?'),
      listVolumes: this.db.prepare<[], { body: string }>('SELECT body FROM volumes ORDER BY name'),
      deleteVolume: this.db.prepare('DELETE FROM volumes WHERE name = ?'),
      putApp: this.db.prepare('INSERT OR REPLACE INTO apps (name, created_at, body) VALUES (?, ?, ?)'),
      getApp: this.db.prepare<[string], { body: string }>('SELECT body FROM apps WHERE name = ?'),
      listApps: this.db.prepare<[], { body: string }>('SELECT body FROM apps ORDER BY name'),
      deleteApp: this.db.prepare('DELETE FROM apps WHERE name = ?'),
      putToken: this.db.prepare('INSERT OR REPLACE INTO tokens (id, created_at, body) VALUES (?, ?, ?)'),
      getToken: this.db.prepare<[string], { body: string }>('SELECT body FROM tokens WHERE id = ?'),
      listTokens: this.db.prepare<[], { body: string }>('SELECT body FROM tokens ORDER BY created_at'),
      deleteToken: this.db.prepare('DELETE FROM tokens WHERE id = ?'),
      putUiSession: this.db.prepare(
        'INSERT OR REPLACE INTO ui_sessions (digest, token_id, created_at, expires_at, body) VALUES (?, ?, ?, ?, ?)',
      ),
      getUiSession: this.db.prepare<[string], { body: string }>('SELECT body FROM ui_sessions WHERE digest = ?'),
      deleteUiSession: this.db.prepare('DELETE FROM ui_sessions WHERE digest = ?'),
      deleteUiSessionsOf: this.db.prepare('DELETE FROM ui_sessions WHERE token_id = ?'),
      deleteEndedUiSessions: this.db.prepare('DELETE FROM ui_sessions WHERE expires_at <= ?'),
      deleteOldestUiSessions: this.db.prepare(
        'DELETE FROM ui_sessions WHERE digest IN (SELECT digest FROM ui_sessions ORDER BY created_at DESC LIMIT -1 OFFSET ?)',
      ),
      putJob: this.db.prepare('INSERT OR REPLACE INTO jobs (name, created_at, body) VALUES (?, ?, ?)'),
      getJob: this.db.prepare<[string], { body: string }>('SELECT body FROM jobs WHERE name = ?'),
      listJobs: this.db.prepare<[], { body: string }>('SELECT body FROM jobs ORDER BY name'),
      deleteJob: this.db.prepare('DELETE FROM jobs WHERE name = ?'),
      putJobRun: this.db.prepare(
        `INSERT INTO job_runs (id, job, n, state, created_at, body) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, body = excluded.body
         WHERE job_runs.state NOT IN (${ENDED.map((s) => `'${s}'`).join(', ')})`,
      ),
      getJobRun: this.db.prepare<[string], { body: string }>('SELECT body FROM job_runs WHERE id = ?'),
      listJobRuns: this.db.prepare<[], { body: string }>('SELECT body FROM job_runs ORDER BY created_at, n'),
      listRunsOf: this.db.prepare<[string], { body: string }>('SELECT body FROM job_runs WHERE job = ? ORDER BY n'),
      deleteJobRun: this.db.prepare('DELETE FROM job_runs WHERE id = ?'),
    };
  }

  /** Records an older realm wrote hold injected secrets in clear: sealed now, the clear bytes gone. */
  private sealOlderRecords(): void {
    const plain = this.stmts.listSandboxes
      .all()
      .filter((r) => ((JSON.parse(r.body) as { inject?: StoredInject[] }).inject ?? []).some((i) => i.value !== undefined));
    if (plain.length === 0) return;
    this.db.transaction(() => {
      for (const r of plain) {
        const rec = this.opened(JSON.parse(r.body) as SandboxRecord);
        this.stmts.putSandbox.run(rec.id, rec.name, rec.createdAt, this.sealed(rec));
      }
    })();
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** The record as stored: each injected value sealed, bound to its sandbox, host and header. */
  private sealed(rec: SandboxRecord): string {
    const inject = rec.inject?.map(({ value, ...i }): StoredInject => ({ ...i, sealed: this.box.seal(value, aad(rec.id, i)) }));
    return JSON.stringify(inject ? { ...rec, inject } : rec);
  }

  /** A stored record with its injected values opened (plain ones, of an older realm, as they are). */
  private opened(stored: SandboxRecord): SandboxRecord {
    try {
      if (this.decodeState) stored.driverState = this.decodeState(stored.driver, stored.driverState);
    } catch {
      // Left as read: its driver refuses it, with the reason, when a verb is first asked of it.
    }
    const list = stored.inject as StoredInject[] | undefined;
    if (!list) return stored;
    const inject = list.flatMap(({ sealed, value, ...i }): Inject[] => {
      if (sealed === undefined) return value === undefined ? [] : [{ ...i, value }];
      try {
        return [{ ...i, value: this.box.open(sealed, aad(stored.id, i)) }];
      } catch {
        // Never injected garbage: the request goes out without the header (the upstream refuses it).
        log.error(
          `sandbox ${stored.id}: the ${i.header} header for ${i.host} cannot be opened with the data dir's secret.key (replaced or lost?); it is not injected`,
          { sandboxId: stored.id },
        );
        return [];
      }
    });
    return { ...stored, inject };
  }

  private sandbox(row: { body: string } | undefined): SandboxRecord | null {
    return row ? this.opened(JSON.parse(row.body) as SandboxRecord) : null;
  }

  /** Bring an older realm's records to today's shape, once (user_version counts what was done). */
  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version >= 1) return;
    this.db.transaction(() => {
      for (const row of this.stmts.listSandboxes.all()) {
        const m = migrateLegacyWorkspace(this.opened(JSON.parse(row.body) as SandboxRecord));
        if (!m) continue;
        this.stmts.putSandbox.run(m.sandbox.id, m.sandbox.name, m.sandbox.createdAt, this.sealed(m.sandbox));
        const vol = parse<VolumeRecord>(this.stmts.getVolume.get(m.volume));
        if (vol) this.stmts.putVolume.run(vol.name, vol.createdAt, JSON.stringify(markWorkspaceVolume(vol, m.name)));
      }
      this.db.pragma('user_version = 1');
    })();
  }

  putSandbox(rec: SandboxRecord): Promise<void> {
    this.stmts.putSandbox.run(rec.id, rec.name, rec.createdAt, this.sealed(rec));
    return Promise.resolve();
  }
  getSandbox(id: string): Promise<SandboxRecord | null> {
    return Promise.resolve(this.sandbox(this.stmts.getSandbox.get(id)));
  }
  getSandboxByName(name: string): Promise<SandboxRecord | null> {
    return Promise.resolve(this.sandbox(this.stmts.getSandboxByName.get(name)));
  }
  listSandboxes(): Promise<SandboxRecord[]> {
    return Promise.resolve(this.stmts.listSandboxes.all().map((r) => this.opened(JSON.parse(r.body) as SandboxRecord)));
  }
  deleteSandbox(id: string): Promise<void> {
    this.stmts.deleteSandbox.run(id);
    return Promise.resolve();
  }
  putVolume(rec: VolumeRecord): Promise<void> {
    this.stmts.putVolume.run(rec.name, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getVolume(name: string): Promise<VolumeRecord | null> {
    return Promise.resolve(parse<VolumeRecord>(this.stmts.getVolume.get(name)));
  }
  listVolumes(): Promise<VolumeRecord[]> {
    return Promise.resolve(this.stmts.listVolumes.all().map((r) => JSON.parse(r.body) as VolumeRecord));
  }
  deleteVolume(name: string): Promise<void> {
    this.stmts.deleteVolume.run(name);
    return Promise.resolve();
  }
  putApp(rec: AppRecord): Promise<void> {
    this.stmts.putApp.run(rec.name, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getApp(name: string): Promise<AppRecord | null> {
    return Promise.resolve(parse<AppRecord>(this.stmts.getApp.get(name)));
  }
  listApps(): Promise<AppRecord[]> {
    return Promise.resolve(this.stmts.listApps.all().map((r) => JSON.parse(r.body) as AppRecord));
  }
  deleteApp(name: string): Promise<void> {
    this.stmts.deleteApp.run(name);
    return Promise.resolve();
  }
  putToken(rec: TokenRecord): Promise<void> {
    this.stmts.putToken.run(rec.id, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getToken(id: string): Promise<TokenRecord | null> {
    return Promise.resolve(parse<TokenRecord>(this.stmts.getToken.get(id)));
  }
  listTokens(): Promise<TokenRecord[]> {
    return Promise.resolve(this.stmts.listTokens.all().map((r) => JSON.parse(r.body) as TokenRecord));
  }
  deleteToken(id: string): Promise<void> {
    this.db.transaction(() => {
      this.stmts.deleteToken.run(id);
      this.stmts.deleteUiSessionsOf.run(id);
    })();
    return Promise.resolve();
  }
  putUiSession(rec: UiSessionRecord): Promise<void> {
    this.stmts.putUiSession.run(rec.digest, rec.tokenId, rec.createdAt, rec.expiresAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getUiSession(digest: string): Promise<UiSessionRecord | null> {
    const row = this.stmts.getUiSession.get(digest);
    return Promise.resolve(row ? (JSON.parse(row.body) as UiSessionRecord) : null);
  }
  deleteUiSession(digest: string): Promise<void> {
    this.stmts.deleteUiSession.run(digest);
    return Promise.resolve();
  }
  pruneUiSessions(now: number, keep: number): Promise<void> {
    this.db.transaction(() => {
      this.stmts.deleteEndedUiSessions.run(now);
      this.stmts.deleteOldestUiSessions.run(keep);
    })();
    return Promise.resolve();
  }
  putJob(rec: JobRecord): Promise<void> {
    this.stmts.putJob.run(rec.name, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getJob(name: string): Promise<JobRecord | null> {
    return Promise.resolve(parse<JobRecord>(this.stmts.getJob.get(name)));
  }
  listJobs(): Promise<JobRecord[]> {
    return Promise.resolve(this.stmts.listJobs.all().map((r) => JSON.parse(r.body) as JobRecord));
  }
  deleteJob(name: string): Promise<void> {
    this.stmts.deleteJob.run(name);
    return Promise.resolve();
  }
  putJobRun(rec: JobRunRecord): Promise<boolean> {
    const r = this.stmts.putJobRun.run(rec.id, rec.job, rec.n, rec.state, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve(r.changes > 0);
  }
  getJobRun(id: string): Promise<JobRunRecord | null> {
    return Promise.resolve(parse<JobRunRecord>(this.stmts.getJobRun.get(id)));
  }
  listJobRuns(job?: string): Promise<JobRunRecord[]> {
    const rows = job === undefined ? this.stmts.listJobRuns.all() : this.stmts.listRunsOf.all(job);
    return Promise.resolve(rows.map((r) => JSON.parse(r.body) as JobRunRecord));
  }
  deleteJobRun(id: string): Promise<void> {
    this.stmts.deleteJobRun.run(id);
    return Promise.resolve();
  }
  /** The database, for node-local indexes kept beside the records (the blob store's: sqlite/blobs.ts). */
  get database(): Database.Database {
    return this.db;
  }
  close(): void {
    this.db.close();
  }
}

/** What a sealed value is bound to: its sandbox, host and header. */
const aad = (id: string, i: Pick<Inject, 'host' | 'header'>): string => `${id}\0${i.host}\0${i.header}`;

function parse<T>(row: { body: string } | undefined): T | null {
  return row ? (JSON.parse(row.body) as T) : null;
}
