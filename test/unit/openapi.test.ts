/**
 * The OpenAPI document: redocly's recommended rules pass it, each operation is named and says
 * what it answers, the answer check of the e2e harness catches a mismatch, and every operation
 * was exercised by the e2e suite (from what its test daemons answered, .realm-test/openapi-hits/;
 * the e2e files run before this one in `npm test`).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { openapiDocument } from '../../src/daemon/openapi.js';
import { HITS_DIR, checkAnswer, hitsName, type Doc } from '../helpers/response-check.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const doc = openapiDocument() as Doc & {
  security: unknown;
  servers: unknown[];
  components: { securitySchemes: Record<string, unknown> };
};
const ops = Object.entries(doc.paths).flatMap(([path, m]) => Object.entries(m).map(([method, op]) => ({ path, method, op })));

/**
 * Operations no e2e file exercises, and why. Keep this short: each entry is a route whose answers
 * nothing checks against the document.
 */
const NOT_EXERCISED: Record<string, string> = {
  removeNode:
    'only a node that is down can be removed, and a lone daemon is up; test/cluster/cluster.test.ts removes one (not recorded here)',
  createUpgrade:
    'a daemon restarts into the release it installs, which one in the test process cannot; test/cluster/upgrade.test.ts upgrades `realm serve` processes and gets 202 (not recorded here)',
  inviteNode:
    'a node alone has no cluster to invite to; test/cluster/cluster.test.ts makes invites on nodes in their own processes (not recorded here)',
};

void describe('OpenAPI document', () => {
  void it('passes redocly lint (npm run lint:openapi)', () => {
    const r = spawnSync('bash', [join(ROOT, 'scripts/lint-openapi.sh')], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `redocly lint failed:\n${r.stdout}\n${r.stderr}`);
  });

  void it('names every operation once, in camelCase, and says what it answers', () => {
    const ids = ops.map((o) => o.op.operationId);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const { path, method, op } of ops) {
      assert.match(op.operationId, /^[a-z][A-Za-z0-9]*$/, `${method} ${path}`);
      const ok = Object.keys(op.responses).filter((s) => /^(1|2)\d\d$/.test(s));
      assert.ok(ok.length, `${method} ${path} documents a success`);
      for (const s of ok) {
        const content = op.responses[s]?.content;
        if (s === '204' || s === '101') assert.equal(content, undefined, `${method} ${path} ${s} has no body`);
      }
      for (const s of ['4XX', '5XX'])
        assert.ok(op.responses[s]?.content?.['application/json'], `${method} ${path} ${s} is a JSON error`);
    }
    assert.deepEqual(doc.security, [{ bearer: [] }]);
    assert.deepEqual(
      { ...(doc.components.securitySchemes.bearer as object), description: undefined },
      { type: 'http', scheme: 'bearer', description: undefined },
    );
    assert.deepEqual(
      ops.filter((o) => o.op.security?.length === 0).map((o) => `${o.method} ${o.path}`),
      ['get /v1/health', 'post /v1/ui/session', 'delete /v1/ui/session'],
    );
    assert.ok(doc.servers.length);
  });

  void it('the e2e answer check finds what does not match', () => {
    const sandbox = {
      id: 'a',
      name: null,
      driver: 'namespace',
      image: 'host',
      status: 'running',
      limits: { memoryBytes: 1, pids: 8, cpus: 1, diskBytes: 1, tmpBytes: 1 },
      network: 'none',
      allow: [],
      deny: [],
      inject: [],
      volumes: [],
      labels: {},
      createdAt: 'x',
      expiresAt: null,
    };
    const body = (v: unknown) => Buffer.from(JSON.stringify(v));
    assert.equal(checkAnswer('GET', '/v1/sandboxes/a', 200, 'application/json', body(sandbox)), undefined);
    assert.match(
      checkAnswer('GET', '/v1/sandboxes/a', 200, 'application/json', body({ ...sandbox, status: 'gone' })) ?? '',
      /status must be equal to one of/,
    );
    assert.match(checkAnswer('GET', '/v1/sandboxes/a', 200, 'text/plain', body(sandbox)) ?? '', /content-type text\/plain/);
    assert.match(
      checkAnswer('GET', '/v1/sandboxes/a', 201, 'application/json', body(sandbox)) ?? '',
      /status 201 is not in the document/,
    );
    assert.match(
      checkAnswer('DELETE', '/v1/sandboxes/a', 204, 'text/plain', Buffer.alloc(0)) ?? '',
      /the document states no body, the answer carries content-type/,
    );
    assert.equal(checkAnswer('DELETE', '/v1/sandboxes/a', 204, undefined, Buffer.alloc(0)), undefined);
    assert.equal(
      checkAnswer(
        'GET',
        '/v1/sandboxes/a',
        404,
        'application/json',
        body({ error: { code: 'SANDBOX_NOT_FOUND', message: 'no' } }),
      ),
      undefined,
    );
    assert.match(
      checkAnswer('GET', '/v1/sandboxes/a', 404, 'application/json', body({ error: { code: 'NO_SUCH_CODE', message: 'no' } })) ??
        '',
      /code must be equal to one of/,
    );
    assert.match(
      checkAnswer('GET', '/nowhere', 404, 'application/json', body({ message: 'no' })) ?? '',
      /must have required property 'error'/,
    );
    assert.equal(checkAnswer('POST', '/api/v2/execute', 400, 'application/json', body({ message: 'bad' })), undefined);
    assert.equal(checkAnswer('POST', '/v1/runs/stream', 200, 'text/event-stream', Buffer.from('event: exit\n')), undefined);
    assert.equal(
      checkAnswer('GET', '/v1/images/built', 200, 'application/json', body({ images: [] })),
      undefined,
      '/v1/images/built is not /v1/images/{ref}',
    );
  });

  void it('every operation was exercised by the e2e suite (or says why not)', (t) => {
    // Test files that start daemons (through the harness, which records their answers).
    const e2e = ['e2e', 'images'].flatMap((d) =>
      existsSync(join(ROOT, 'dist/test', d))
        ? readdirSync(join(ROOT, 'dist/test', d))
            .filter(
              (f) => f.endsWith('.test.js') && readFileSync(join(ROOT, 'dist/test', d, f), 'utf8').includes('helpers/daemon.js'),
            )
            .map((f) => hitsName(join(d, f)))
        : [],
    );
    const recorded = existsSync(HITS_DIR) ? readdirSync(HITS_DIR).map((f) => basename(f, '.json')) : [];
    const missing = e2e.filter((f) => !recorded.includes(f));
    // A file that starts no daemon (or skips on this host) records nothing; the check wants most of them.
    if (missing.length > e2e.length / 2)
      return t.skip(`the e2e suite has not run here yet (no answers recorded for ${missing.join(', ')})`);
    const hits = new Map<string, number[]>();
    for (const f of recorded)
      for (const [id, statuses] of Object.entries(
        JSON.parse(readFileSync(join(HITS_DIR, `${f}.json`), 'utf8')) as Record<string, number[]>,
      ))
        hits.set(id, [...(hits.get(id) ?? []), ...statuses]);
    const unexercised = ops
      .filter(({ op }) => !(hits.get(op.operationId) ?? []).some((s) => s < 400) && !(op.operationId in NOT_EXERCISED))
      .map(({ path, method, op }) => `${op.operationId} (${method.toUpperCase()} ${path})`);
    if (missing.length) t.diagnostic(`no answers recorded for ${missing.join(', ')}`);
    assert.deepEqual(unexercised, [], 'operations no e2e file got a success from');
  });
});
