/**
 * Workspaces are known by kind, not by name or label: the API's schemas refuse the names and
 * labels workspaces use, and a store written by an older realm (label-based workspaces) is
 * migrated once when it opens, its squatters left as the plain sandboxes they are.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { createSandboxSchema, updateSandboxSchema } from '../../src/engine/schemas.js';
import type { SandboxRecord } from '../../src/store/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';

void test('the API refuses ws- names, realm.* labels and ws- volumes, saying what to change', () => {
  assert.throws(() => createSandboxSchema.parse({ name: 'ws-foo' }), /kept for workspaces; pick another name/);
  assert.throws(() => createSandboxSchema.parse({ name: 'WS-foo' }), /kept for workspaces/);
  assert.throws(() => createSandboxSchema.parse({ labels: { 'realm.workspace': 'foo' } }), /kept for realm itself/);
  assert.throws(() => updateSandboxSchema.parse({ labels: { 'realm.project': '/x' } }), /kept for realm itself/);
  assert.throws(() => createSandboxSchema.parse({ volumes: [{ volume: 'ws-foo', path: '/x' }] }), /workspaces' clones/);
  // Near misses are ordinary names.
  assert.equal(
    createSandboxSchema.parse({
      name: 'wsfoo',
      labels: { realmx: '1', 'app.realm.k': 'v' },
      volumes: [{ volume: 'news-data', path: '/x' }],
    }).name,
    'wsfoo',
  );
});

function record(id: string, name: string, labels: Record<string, string>): SandboxRecord {
  return {
    id,
    name,
    driver: 'namespace',
    image: 'host',
    status: 'stopped',
    limits: { memoryBytes: 1, pids: 8, cpus: 1, diskBytes: 1, tmpBytes: 1 },
    network: 'none',
    volumes: [],
    env: {},
    labels,
    expiresAt: null,
    createdAt: 1,
    ephemeral: false,
    driverState: {},
  };
}

void test("an older realm's label-based workspaces become workspaces once; other labelled sandboxes stay plain", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-store-'));
  try {
    // The tables, then records as an older realm wrote them: labels for identity, no migration recorded.
    new SqliteStore(join(dir, 'state.db')).close();
    const db = new Database(join(dir, 'state.db'));
    db.pragma('user_version = 0');
    const put = db.prepare('INSERT INTO sandboxes (id, name, created_at, body) VALUES (?, ?, ?, ?)');
    const ws = record('sb-1', 'ws-app', { 'realm.workspace': 'app', 'realm.project': '/src/app', keep: 'me' });
    const odd = record('sb-2', 'other', { 'realm.workspace': 'other-name' });
    put.run(ws.id, ws.name, 1, JSON.stringify(ws));
    put.run(odd.id, odd.name, 1, JSON.stringify(odd));
    db.prepare('INSERT INTO volumes (name, created_at, body) VALUES (?, ?, ?)').run(
      'ws-app',
      1,
      JSON.stringify({ name: 'ws-app', createdAt: 1, labels: {} }),
    );
    db.close();

    const store = new SqliteStore(join(dir, 'state.db'));
    const migrated = await store.getSandbox('sb-1');
    assert.deepEqual(migrated?.workspace, { name: 'app', project: '/src/app' });
    assert.deepEqual(migrated?.labels, { keep: 'me' });
    assert.deepEqual((await store.getVolume('ws-app'))?.workspace, { name: 'app' });
    assert.equal(
      (await store.getSandbox('sb-2'))?.workspace,
      undefined,
      'a sandbox whose name is not ws-<label> was never a workspace',
    );
    // Once: a label set later (by a store written in between) is not taken as a workspace.
    const later = record('sb-3', 'ws-late', { 'realm.workspace': 'late' });
    await store.putSandbox(later);
    store.close();
    const again = new SqliteStore(join(dir, 'state.db'));
    assert.equal((await again.getSandbox('sb-3'))?.workspace, undefined);
    again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
