/** The single-node store: one SQLite file in the data dir, WAL mode, schema migrated on open. */
import Database from 'better-sqlite3';
import type { SandboxRecord, Store, TokenRecord, VolumeRecord } from '../store.js';
import { markWorkspaceVolume, migrateLegacyWorkspace } from '../migrate.js';

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
  `CREATE TABLE IF NOT EXISTS tokens (
     id TEXT PRIMARY KEY,
     created_at INTEGER NOT NULL,
     body TEXT NOT NULL)`,
];

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts: ReturnType<SqliteStore['prepare']>;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    for (const s of SCHEMA) this.db.exec(s);
    this.stmts = this.prepare();
    this.migrate();
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
      putToken: this.db.prepare('INSERT OR REPLACE INTO tokens (id, created_at, body) VALUES (?, ?, ?)'),
      getToken: this.db.prepare<[string], { body: string }>('SELECT body FROM tokens WHERE id = ?'),
      listTokens: this.db.prepare<[], { body: string }>('SELECT body FROM tokens ORDER BY created_at'),
      deleteToken: this.db.prepare('DELETE FROM tokens WHERE id = ?'),
    };
  }

  /** Bring an older realm's records to today's shape, once (user_version counts what was done). */
  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version >= 1) return;
    this.db.transaction(() => {
      for (const row of this.stmts.listSandboxes.all()) {
        const m = migrateLegacyWorkspace(JSON.parse(row.body) as SandboxRecord);
        if (!m) continue;
        this.stmts.putSandbox.run(m.sandbox.id, m.sandbox.name, m.sandbox.createdAt, JSON.stringify(m.sandbox));
        const vol = parse<VolumeRecord>(this.stmts.getVolume.get(m.volume));
        if (vol) this.stmts.putVolume.run(vol.name, vol.createdAt, JSON.stringify(markWorkspaceVolume(vol, m.name)));
      }
      this.db.pragma('user_version = 1');
    })();
  }

  putSandbox(rec: SandboxRecord): Promise<void> {
    this.stmts.putSandbox.run(rec.id, rec.name, rec.createdAt, JSON.stringify(rec));
    return Promise.resolve();
  }
  getSandbox(id: string): Promise<SandboxRecord | null> {
    return Promise.resolve(parse<SandboxRecord>(this.stmts.getSandbox.get(id)));
  }
  getSandboxByName(name: string): Promise<SandboxRecord | null> {
    return Promise.resolve(parse<SandboxRecord>(this.stmts.getSandboxByName.get(name)));
  }
  listSandboxes(): Promise<SandboxRecord[]> {
    return Promise.resolve(this.stmts.listSandboxes.all().map((r) => JSON.parse(r.body) as SandboxRecord));
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
    this.stmts.deleteToken.run(id);
    return Promise.resolve();
  }
  close(): void {
    this.db.close();
  }
}

function parse<T>(row: { body: string } | undefined): T | null {
  return row ? (JSON.parse(row.body) as T) : null;
}
