/** Secrets at rest: injected header values sealed in state.db under a 0600 key, older plain records still read. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { SecretBox } from '../../src/store/secrets.js';
import type { SandboxRecord } from '../../src/store/store.js';

function record(id: string, value: string): SandboxRecord {
  return {
    id,
    name: null,
    driver: 'namespace',
    image: 'host',
    status: 'running',
    network: 'none',
    allow: ['api.example.com'],
    deny: [],
    inject: [{ host: 'api.example.com', header: 'Authorization', value }],
    volumes: [],
    env: {},
    labels: {},
    expiresAt: null,
    createdAt: Date.now(),
    ephemeral: false,
    driverState: {},
    limits: { memoryBytes: 1, pids: 1, cpus: 1, diskBytes: 1, tmpBytes: 1 },
  };
}

/** Every byte of the database and its WAL. */
const bytesOf = (db: string): Buffer =>
  Buffer.concat(
    [db, `${db}-wal`].map((f) => {
      try {
        return readFileSync(f);
      } catch {
        return Buffer.alloc(0);
      }
    }),
  );

void describe('secrets at rest', () => {
  const dirs: string[] = [];
  const dir = (): string => {
    const d = mkdtempSync(join(tmpdir(), 'realm-secrets-'));
    dirs.push(d);
    return d;
  };
  process.on('exit', () => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  void it('an injected value is sealed in the database (and its WAL), opened on read; the files are 0600', async () => {
    const d = dir();
    const store = new SqliteStore(join(d, 'state.db'));
    const secret = 'Bearer s3cr3t-value-1';
    await store.putSandbox(record('sb-1', secret));
    assert.equal((await store.getSandbox('sb-1'))?.inject?.[0]?.value, secret);
    assert.equal((await store.listSandboxes())[0]?.inject?.[0]?.value, secret);
    assert.ok(!bytesOf(join(d, 'state.db')).includes(secret), 'the value is in clear in state.db or its WAL');
    for (const f of ['state.db', 'state.db-wal', 'state.db-shm', 'secret.key'])
      assert.equal(statSync(join(d, f)).mode & 0o777, 0o600, f);
    assert.equal(statSync(join(d, 'secret.key')).size, 32);
    store.close();
    // A restart reads it back with the same key.
    const again = new SqliteStore(join(d, 'state.db'));
    assert.equal((await again.getSandbox('sb-1'))?.inject?.[0]?.value, secret);
    again.close();
  });

  void it('a record an older realm wrote (value in clear) is read, then sealed and its clear bytes gone', async () => {
    const d = dir();
    const file = join(d, 'state.db');
    const secret = 'Bearer older-plain-value-2';
    // What an older realm left: plain JSON, a 0644 database.
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    old.exec('CREATE TABLE sandboxes (id TEXT PRIMARY KEY, name TEXT UNIQUE, created_at INTEGER NOT NULL, body TEXT NOT NULL)');
    old.prepare('INSERT INTO sandboxes VALUES (?, ?, ?, ?)').run('sb-2', null, 1, JSON.stringify(record('sb-2', secret)));
    old.close();
    assert.ok(bytesOf(file).includes(secret));
    const store = new SqliteStore(file);
    assert.equal((await store.getSandbox('sb-2'))?.inject?.[0]?.value, secret);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    store.close();
    assert.ok(!bytesOf(file).includes(secret), "the older record's clear value is still in the file");
  });

  void it('a sealed value opens only with its key and in its own record', async () => {
    const d = dir();
    const box = SecretBox.load(join(d, 'k'));
    const sealed = box.seal('v', 'sb-1\0h\0X');
    assert.equal(box.open(sealed, 'sb-1\0h\0X'), 'v');
    assert.throws(() => box.open(sealed, 'sb-2\0h\0X'));
    assert.equal(SecretBox.load(join(d, 'k')).open(sealed, 'sb-1\0h\0X'), 'v', 'a second load finds the same key');
    // A replaced key: the injection is dropped (never garbage sent as the header).
    const store = new SqliteStore(join(d, 'state.db'));
    await store.putSandbox(record('sb-3', 'x'));
    store.close();
    writeFileSync(join(d, 'secret.key'), Buffer.alloc(32, 1));
    const other = new SqliteStore(join(d, 'state.db'));
    assert.deepEqual((await other.getSandbox('sb-3'))?.inject, []);
    other.close();
    writeFileSync(join(d, 'bad.key'), 'short');
    assert.throws(() => SecretBox.load(join(d, 'bad.key')), /not a realm secret key/);
  });
});
