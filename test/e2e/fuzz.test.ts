/**
 * Bad input, generated: thousands of bodies, paths and ids against every route. The daemon must
 * answer every one with a status below 500 and a JSON error when it refuses, never crash, and
 * leave nothing behind once what it did create is destroyed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Sandbox } from '@realm/sdk';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping fuzz tests: ${skip}`);

const FIELDS = [
  'image',
  'driver',
  'name',
  'memory',
  'cpus',
  'pids',
  'disk',
  'tmp',
  'network',
  'volumes',
  'env',
  'labels',
  'ttl',
  'language',
  'code',
  'files',
  'stdin',
  'args',
  'timeout',
  'compileTimeout',
  'output',
  'command',
  'cwd',
  'path',
  'from',
  'to',
  'recursive',
  'parents',
  'signal',
  'version',
  'run_timeout',
  'run_memory_limit',
  'encoding',
  'content',
];

/** Values that poke at limits and parsers: absurd numbers, unit strings, traversal, NUL, unicode. */
const nasty = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    -1,
    0,
    1e308,
    -1e308,
    Number.MAX_SAFE_INTEGER + 2,
    2 ** 64,
    0.0001,
    '512m',
    '99999999g',
    '-5s',
    '1e9',
    'NaN',
    'Infinity',
    '../../etc/passwd',
    '/proc/self/root',
    '\u0000',
    'a\u0000b',
    '😀'.repeat(50),
    ' ',
    '',
    'host',
    'none',
    'all',
    'python',
    'bash',
    'SIGKILL',
    '/home/user',
    '/',
    '..',
    'x'.repeat(70_000),
  ),
  fc.string({ unit: 'binary', maxLength: 64 }),
);

const body = fc.oneof(fc.dictionary(fc.constantFrom(...FIELDS), nasty, { maxKeys: 6 }), fc.jsonValue({ maxDepth: 4 }));

/** A raw body: JSON text, or bytes that are not (invalid UTF-8 included). */
const rawBody = fc.oneof(
  body.map((b) => Buffer.from(JSON.stringify(b) ?? 'null')),
  fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b)),
  fc.constantFrom(
    Buffer.from('{"a":'),
    Buffer.from('['.repeat(100_000)),
    Buffer.from(`${'{"a":'.repeat(50_000)}1${'}'.repeat(50_000)}`),
    Buffer.from([0xff, 0xfe, 0x7b, 0x7d]),
  ),
);

const pathParam = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom(
    '../../../etc/shadow',
    '/etc/shadow',
    '/proc/1/root/etc/shadow',
    '%2e%2e%2f',
    'a\u0000b',
    '/home/user/../../root',
  ),
);

void describe('fuzzing every route', { skip }, () => {
  let t: TestDaemon;
  let id = '';
  before(async () => {
    t = await startTestDaemon({ warm: 0, maxRuns: 4 });
    id = (await Sandbox.create({ name: 'fuzz-target' }, t.client)).id;
  });
  after(async () => {
    await t.close();
    removeTestDirs(t);
  });

  const send = async (method: string, path: string, payload?: Buffer, contentType = 'application/json'): Promise<void> => {
    if (process.env.FUZZ_LOG)
      console.error('REQ', method, path, payload?.length, JSON.stringify(payload?.subarray(0, 120).toString()));
    const res = await fetch(t.url + path, {
      method,
      headers: { 'content-type': contentType, authorization: `Bearer ${t.token}` },
      ...(payload ? { body: new Uint8Array(payload) } : {}),
    });
    const text = await res.text();
    assert.ok(res.status < 500, `${method} ${path} → ${res.status} ${text.slice(0, 300)}`);
    if (res.status >= 400 && !path.startsWith('/api/v2/')) {
      const err = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
      assert.ok(err?.code && err.message, `${method} ${path} → ${res.status} without an error body: ${text.slice(0, 200)}`);
    }
  };

  const routes = (sid: string): [string, string][] => [
    ['POST', '/v1/sandboxes'],
    ['POST', '/v1/runs'],
    ['POST', `/v1/sandboxes/${sid}/exec`],
    ['PATCH', `/v1/sandboxes/${sid}`],
    ['POST', `/v1/sandboxes/${sid}/signal`],
    ['POST', `/v1/sandboxes/${sid}/files/mkdir`],
    ['POST', `/v1/sandboxes/${sid}/files/remove`],
    ['POST', `/v1/sandboxes/${sid}/files/move`],
    ['POST', '/v1/tokens'],
    ['POST', '/api/v2/execute'],
    ['POST', '/api/repl/execute'],
  ];

  void it('bodies: every refusal is a 4xx with a code, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 10 }),
        rawBody,
        fc.constantFrom(id, 'sb-nope', 'fuzz-target', '..', '%00'),
        async (r, payload, sid) => {
          const [method, path] = routes(sid)[r] ?? ['POST', '/v1/sandboxes'];
          // Never signal or remove the fuzz target's own init: send to a name that does not exist.
          const target =
            path.includes('/signal') || path.includes('/remove')
              ? path.replace(id, 'sb-nope').replace('fuzz-target', 'sb-nope')
              : path;
          await send(method, target, payload);
        },
      ),
      { numRuns: 1500, ...(process.env.FUZZ_SEED ? { seed: Number(process.env.FUZZ_SEED) } : {}) },
    );
  });

  void it('paths and ids in URLs: never a 500, nothing read from the host', async () => {
    await fc.assert(
      fc.asyncProperty(
        pathParam,
        fc.constantFrom('', '/list', '/stat', '/tar'),
        fc.string({ maxLength: 20 }),
        async (p, kind, junkId) => {
          const q = `?path=${encodeURIComponent(p)}`;
          await send('GET', `/v1/sandboxes/${id}/files${kind}${q}`);
          await send(
            'PUT',
            `/v1/sandboxes/${id}/files${kind === '/tar' ? '/tar' : ''}${q}`,
            Buffer.from('x'),
            'application/octet-stream',
          );
          await send('GET', `/v1/sandboxes/${encodeURIComponent(junkId)}`);
          await send('DELETE', `/v1/volumes/${encodeURIComponent(junkId)}`);
        },
      ),
      { numRuns: 400 },
    );
    const shadow = await fetch(`${t.url}/v1/sandboxes/${id}/files?path=${encodeURIComponent('/etc/shadow')}`, {
      headers: { authorization: `Bearer ${t.token}` },
    });
    assert.equal(shadow.status, 404);
  });

  void it('afterwards: the daemon is healthy and, once its sandboxes are destroyed, nothing is left', async () => {
    assert.equal((await fetch(`${t.url}/v1/health`)).status, 200);
    assert.equal((await Sandbox.get(id, t.client)).info.status, 'running');
    for (const s of await t.daemon.engine.listSandboxes()) await t.daemon.engine.destroySandbox(s.id);
    assert.deepEqual(await leftovers(t), []);
  });
});
