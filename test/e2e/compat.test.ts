/** Compatibility routes (Piston v2, REPL API) and the OpenAPI document, over real HTTP. */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping compatibility tests: ${skip}`);

interface Stage {
  stdout: string;
  stderr: string;
  output: string;
  code: number | null;
  signal: string | null;
  status: string | null;
  message: string | null;
  cpu_time: number;
  wall_time: number;
  memory: number;
}

void describe('compatibility routes and OpenAPI', { skip }, () => {
  let t: TestDaemon;
  const post = async (path: string, body: unknown) => {
    const res = await fetch(t.url + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  before(async () => {
    t = await startTestDaemon();
  });
  after(async () => {
    await t.close();
    removeTestDirs(t);
  });

  void it('Piston: runtimes and execute with Piston’s shapes', async () => {
    const runtimes = (await (
      await fetch(`${t.url}/api/v2/runtimes`, { headers: { authorization: `Bearer ${t.token}` } })
    ).json()) as { language: string; version: string; aliases: string[] }[];
    const py = runtimes.find((r) => r.language === 'python');
    assert.ok(py && /^\d+\.\d+/.test(py.version) && py.aliases.includes('py'));
    const r = await post('/api/v2/execute', {
      language: 'py',
      version: '*',
      files: [{ name: 'x.py', content: 'import sys; print(sys.stdin.read().strip(), sys.argv[1]); print("e", file=sys.stderr)' }],
      stdin: 'in',
      args: ['arg'],
      run_timeout: 3000,
    });
    assert.equal(r.status, 200);
    assert.equal(r.body.language, 'python');
    const run = r.body.run as Stage;
    assert.equal(run.stdout, 'in arg\n');
    assert.equal(run.stderr, 'e\n');
    assert.equal(run.output, 'in arg\ne\n');
    assert.equal(run.code, 0);
    assert.equal(run.status, null);
    assert.ok(run.wall_time >= 0 && run.cpu_time >= 0 && run.memory > 0);
    assert.equal(r.body.compile, undefined);
  });

  void it('Piston: compiled languages have a compile stage; failures and limits have statuses', async () => {
    const ok = await post('/api/v2/execute', {
      language: 'c',
      version: '*',
      files: [{ content: '#include <stdio.h>\nint main(void){puts("hi");return 3;}' }],
    });
    assert.equal((ok.body.compile as Stage).code, 0);
    assert.equal((ok.body.run as Stage).stdout, 'hi\n');
    assert.equal((ok.body.run as Stage).code, 3);
    assert.equal((ok.body.run as Stage).status, 'RE');
    const bad = await post('/api/v2/execute', { language: 'c', version: '*', files: [{ content: 'int main( {' }] });
    assert.notEqual((bad.body.compile as Stage).code, 0);
    assert.match((bad.body.compile as Stage).stderr, /error/);
    // As upstream: the program never ran, and `run` is the compile stage (for clients reading only `run`).
    assert.deepEqual(bad.body.run, bad.body.compile);
    const slow = await post('/api/v2/execute', {
      language: 'python',
      version: '*',
      files: [{ content: 'while True: pass' }],
      run_timeout: 300,
    });
    assert.equal((slow.body.run as Stage).status, 'TO');
    const b64 = await post('/api/v2/execute', {
      language: 'bash',
      version: '*',
      files: [{ content: Buffer.from('echo decoded').toString('base64'), encoding: 'base64' }],
    });
    assert.equal((b64.body.run as Stage).stdout, 'decoded\n');
  });

  void it('Piston: binary files arrive byte for byte (base64 and hex)', async () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    const prog = 'import hashlib; d = open("data.bin", "rb").read(); print(len(d), hashlib.sha256(d).hexdigest())';
    const want = `256 ${createHash('sha256').update(all).digest('hex')}\n`;
    for (const encoding of ['base64', 'hex'] as const) {
      const r = await post('/api/v2/execute', {
        language: 'python',
        version: '*',
        files: [
          { name: 'main.py', content: prog },
          { name: 'data.bin', content: all.toString(encoding), encoding },
        ],
      });
      assert.equal((r.body.run as Stage).stdout, want, encoding);
    }
    // The same through /v1/runs.
    const v1 = await post('/v1/runs', {
      language: 'python',
      files: [
        { name: 'main.py', content: prog },
        { name: 'data.bin', content: all.toString('base64'), encoding: 'base64' },
      ],
    });
    assert.equal(v1.body.stdout, want);
  });

  void it('Piston: versions match as semver ranges; null and 0 mean the default', async () => {
    const runtimes = (await (
      await fetch(`${t.url}/api/v2/runtimes`, { headers: { authorization: `Bearer ${t.token}` } })
    ).json()) as { language: string; version: string }[];
    const version = runtimes.find((r) => r.language === 'python')?.version ?? '';
    const [major, minor] = version.split('.');
    const execute = (v: string, extra: Record<string, unknown> = {}) =>
      post('/api/v2/execute', {
        language: 'python',
        version: v,
        files: [{ content: 'import sys; print(sys.stdin.read() == "", len(sys.argv))' }],
        ...extra,
      });
    for (const v of [version, `${major}.${minor}`, `^${major}.${minor}.0`, `>=${major}.0`, `${major}.x`, '*'])
      assert.equal((await execute(v)).status, 200, v);
    // A prefix of the version is not a range it satisfies (3.1 is not 3.11).
    const prefix = minor && minor.length > 1 ? [`${major}.${minor.slice(0, -1)}`] : [];
    for (const v of [...prefix, `>${version}`, `<${major}`]) {
      const r = await execute(v);
      assert.equal(r.status, 400, v);
      assert.match(String(r.body.message), /runtime is unknown/);
    }
    const nulls = await execute('*', { stdin: null, args: null, run_timeout: 0, compile_timeout: null, run_memory_limit: null });
    assert.equal(nulls.status, 200, JSON.stringify(nulls.body));
    assert.equal((nulls.body.run as Stage).stdout, 'True 1\n');
  });

  void it('/v1/runs refuses code and files together; the REPL refuses unknown fields', async () => {
    const both = await post('/v1/runs', { language: 'python', code: 'print(1)', files: [{ content: 'print(2)' }] });
    assert.equal(both.status, 400);
    assert.match(JSON.stringify(both.body), /not both/);
    const extra = await post('/api/repl/execute', { language: 'python', code: 'print(1)', timeout: 5 });
    assert.equal(extra.status, 400);
  });

  void it('Piston: bad requests are 400 with a message', async () => {
    for (const body of [
      { language: 'python', version: '*', files: [] },
      { language: 'python', version: '*' },
      { language: 'cobol', version: '*', files: [{ content: '' }] },
      { language: 'python', version: '2.7', files: [{ content: '' }] },
      '{broken',
    ]) {
      const r = await post('/api/v2/execute', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(typeof r.body.message, 'string');
      assert.equal(r.body.error, undefined);
    }
  });

  void it('REPL API: languages, execute, and a stream that ends with done', async () => {
    const langs = (await (
      await fetch(`${t.url}/api/repl/languages`, { headers: { authorization: `Bearer ${t.token}` } })
    ).json()) as string[];
    assert.ok(langs.includes('python') && langs.includes('bash'));
    assert.deepEqual((await post('/api/repl/execute', { language: 'python', code: 'print(6*7)' })).body, {
      result: '42\n',
      success: true,
    });
    const fail = await post('/api/repl/execute', { language: 'python', code: 'raise ValueError("no")' });
    assert.equal(fail.body.success, false);
    assert.match(String(fail.body.result), /ValueError: no/);
    const res = await fetch(`${t.url}/api/repl/execute/stream`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'bash', code: 'echo one; echo two' }),
    });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const text = await res.text();
    const data = [...text.matchAll(/^data: ?(.*)$/gm)].map((m) => m[1]).join('\n');
    assert.match(data, /one\s+two/);
    assert.match(text, /event: done\ndata: \{"success":true/);
    assert.deepEqual(await leftovers(t), []);
  });

  void it('the OpenAPI document lists every route the daemon serves', async () => {
    const doc = (await (await fetch(`${t.url}/v1/openapi.json`, { headers: { authorization: `Bearer ${t.token}` } })).json()) as {
      openapi: string;
      paths: Record<string, Record<string, unknown>>;
    };
    assert.equal(doc.openapi, '3.1.0');
    const served = t.daemon.app.routes.filter((r) => r.method !== 'ALL');
    assert.ok(served.length > 10);
    for (const r of served) {
      const path = r.path.replace(/:(\w+)/g, '{$1}');
      assert.ok(doc.paths[path]?.[r.method.toLowerCase()], `${r.method} ${path} is missing from /v1/openapi.json`);
    }
    const create = doc.paths['/v1/sandboxes']?.post as {
      requestBody: { content: { 'application/json': { schema: { properties: Record<string, unknown> } } } };
    };
    assert.ok('memory' in create.requestBody.content['application/json'].schema.properties);
  });
});
