/** Bearer tokens: the daemon refuses TCP requests without a valid token; tokens are stored hashed. */
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { Client, Sandbox, UnauthorizedError, tokens } from '@realm/sdk';
import { daemonHooks, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping auth tests: ${skip}`);

void describe('auth', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 0 });

  void it('without a valid token only /v1/health answers', async () => {
    assert.equal((await fetch(`${t.url}/v1/health`)).status, 200);
    for (const headers of [
      {} as Record<string, string>,
      { authorization: 'Bearer nope' },
      { authorization: 'Bearer rlm_000000000000_guess' },
      { authorization: 'Basic abc' },
    ]) {
      const r = await fetch(`${t.url}/v1/sandboxes`, { headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
      const body = (await r.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'UNAUTHORIZED');
      assert.match(body.error.message, /realm token create/);
    }
    const anon = new Client({ url: t.url, token: '' });
    await assert.rejects(Sandbox.list({}, anon), UnauthorizedError);
    assert.equal(statSync(join(t.dataDir, 'admin-token')).mode & 0o777, 0o600);
  });

  void it('tokens are created, work, are listed without secrets, stored hashed, and revoked', async () => {
    const made = await tokens.create('ci', t.client);
    // The secret is base64url, so it may hold '_' itself: take all of it after the id.
    const secret = /^rlm_[0-9a-f]{12}_([A-Za-z0-9_-]{32})$/.exec(made.token)?.[1];
    assert.ok(secret, made.token);
    const ci = new Client({ url: t.url, token: made.token });
    assert.deepEqual(await Sandbox.list({}, ci), []);
    const listed = await tokens.list(ci);
    assert.deepEqual(
      listed.map((x) => x.name),
      ['ci'],
    );
    assert.ok(!JSON.stringify(listed).includes(secret));
    const db = new Database(join(t.dataDir, 'state.db'), { readonly: true });
    const rows = JSON.stringify(db.prepare('SELECT * FROM tokens').all());
    db.close();
    assert.ok(!rows.includes(secret), 'the secret is in the database');
    await tokens.revoke(made.id, t.client);
    await assert.rejects(Sandbox.list({}, ci), UnauthorizedError);
    await assert.rejects(tokens.revoke(made.id, t.client), (e) => (e as { code?: string }).code === 'TOKEN_NOT_FOUND');
  });

  void it('a token from before tokens had owners no longer works; the admin sees it (owner null) and revokes it', async () => {
    const made = await tokens.create('old', t.client);
    const db = new Database(join(t.dataDir, 'state.db'));
    const row = db.prepare('SELECT body FROM tokens WHERE id = ?').get(made.id) as { body: string };
    const { owner: _owner, ...legacy } = JSON.parse(row.body) as Record<string, unknown>;
    void _owner;
    db.prepare('UPDATE tokens SET body = ? WHERE id = ?').run(JSON.stringify(legacy), made.id);
    db.close();
    await assert.rejects(Sandbox.list({}, new Client({ url: t.url, token: made.token })), UnauthorizedError);
    assert.equal((await tokens.list(t.client)).find((x) => x.id === made.id)?.owner, null);
    await tokens.revoke(made.id, t.client);
  });

  void it('listening beyond loopback wants a token as loopback does', async () => {
    const wide = await startTestDaemon({ listen: '0.0.0.0:0', warm: 0 });
    try {
      const port = new URL(wide.url).port;
      assert.equal((await fetch(`http://127.0.0.1:${port}/v1/sandboxes`)).status, 401);
      const admin = readFileSync(join(wide.dataDir, 'admin-token'), 'utf8').trim();
      assert.equal(
        (await fetch(`http://127.0.0.1:${port}/v1/sandboxes`, { headers: { authorization: `Bearer ${admin}` } })).status,
        200,
      );
    } finally {
      await wide.close();
      removeTestDirs(wide);
    }
  });
});
