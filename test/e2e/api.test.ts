/** The HTTP API with a plain HTTP client: error shapes and codes, and bad input changing nothing. */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping API tests: ${skip}`);

interface ErrorBody {
  error: { code: string; message: string };
}

void describe('HTTP API', { skip }, () => {
  let t: TestDaemon;
  const call = async (method: string, path: string, body?: string, headers: Record<string, string> = {}) => {
    const res = await fetch(t.url + path, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}`, ...headers },
      ...(body !== undefined ? { body } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as unknown };
  };
  before(async () => {
    t = await startTestDaemon({ warm: 0 });
  });
  after(async () => {
    await t.close();
    removeTestDirs(t);
  });

  void it('errors have a stable code, the right status and a message that says what to change', async () => {
    const cases: [string, string, string | undefined, number, string, RegExp][] = [
      ['POST', '/v1/sandboxes', '{not json', 400, 'INVALID_REQUEST', /not valid JSON/],
      ['POST', '/v1/sandboxes', '{"memory":"lots"}', 400, 'INVALID_REQUEST', /memory: "lots" is not a size/],
      ['POST', '/v1/sandboxes', '{"cpus":-1}', 400, 'INVALID_REQUEST', /cpus/],
      ['POST', '/v1/sandboxes', '{"surprise":1}', 400, 'INVALID_REQUEST', /surprise/],
      ['POST', '/v1/sandboxes', '[1,2]', 400, 'INVALID_REQUEST', /object/],
      ['POST', '/v1/sandboxes', '{"volumes":[{"volume":"v","path":"/proc"}]}', 400, 'INVALID_REQUEST', /reserved/],
      ['POST', '/v1/sandboxes', '{"image":"/definitely/not/here"}', 403, 'IMAGE_NOT_ALLOWED', /--image-dir/],
      ['POST', '/v1/sandboxes', '{"image":"no-such-image:1"}', 404, 'IMAGE_NOT_FOUND', /not found/],
      ['GET', '/v1/sandboxes/sb-nope', undefined, 404, 'SANDBOX_NOT_FOUND', /realm sandbox ls/],
      ['POST', '/v1/sandboxes/sb-nope/exec', '{"command":"true"}', 404, 'SANDBOX_NOT_FOUND', /no sandbox/],
      ['POST', '/v1/runs', '{"language":"cobol","code":""}', 404, 'LANGUAGE_NOT_FOUND', /known: /],
      ['POST', '/v1/runs', '{"language":"python"}', 400, 'INVALID_REQUEST', /code/],
      ['POST', '/v1/runs', '{"language":"python","code":"","timeout":"-5s"}', 400, 'INVALID_REQUEST', /timeout/],
      ['DELETE', '/v1/volumes/none-such', undefined, 404, 'VOLUME_NOT_FOUND', /volume ls/],
      ['GET', '/v1/nowhere', undefined, 404, 'NOT_FOUND', /no route/],
      ['GET', '/v1/sandboxes?label=nokeyvalue', undefined, 400, 'INVALID_REQUEST', /key=value/],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const r = await call(method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${body ?? ''}`);
      const err = (r.body as ErrorBody).error;
      assert.equal(err.code, code, `${method} ${path} ${body ?? ''}`);
      assert.match(err.message, message, `${method} ${path} ${body ?? ''}`);
    }
    assert.deepEqual(((await call('GET', '/v1/sandboxes')).body as { sandboxes: unknown[] }).sandboxes, []);
    assert.deepEqual(await leftovers(t), []);
  });

  void it('a wrong method is 405 with Allow; an answer without a body has no content type', async () => {
    for (const [method, path, allow] of [
      ['PUT', '/v1/sandboxes', 'GET, HEAD, POST'],
      ['PATCH', '/v1/runs', 'POST'],
      ['POST', '/v1/openapi.json', 'GET, HEAD'],
      ['DELETE', '/v1/health', 'GET, HEAD'],
    ] as const) {
      const res = await fetch(t.url + path, { method, headers: { authorization: `Bearer ${t.token}` } });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(res.headers.get('allow'), allow, `${method} ${path}`);
      assert.equal(((await res.json()) as ErrorBody).error.code, 'METHOD_NOT_ALLOWED');
    }
    const made = (await call('POST', '/v1/tokens', '{"name":"hygiene"}')).body as { id: string };
    const gone = await fetch(`${t.url}/v1/tokens/${made.id}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${t.token}` },
    });
    assert.equal(gone.status, 204);
    assert.equal(gone.headers.get('content-type'), null);
    assert.equal(await gone.text(), '');
  });

  void it('a body over the limit is 413 and the daemon stays up', async () => {
    const huge = JSON.stringify({ language: 'python', code: 'x'.repeat(81 * 1024 * 1024) });
    const r = await call('POST', '/v1/runs', huge);
    assert.equal(r.status, 413);
    assert.equal((r.body as ErrorBody).error.code, 'INVALID_REQUEST');
    assert.equal((await call('GET', '/v1/health')).status, 200);
  });

  void it('a JSON body sent in chunks (no Content-Length) is read whole; one past the limit is 413', async () => {
    const post = (chunks: string[]): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const u = new URL(t.url);
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: '/v1/runs',
            method: 'POST',
            headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
          },
          (res) => {
            let body = '';
            res
              .setEncoding('utf8')
              .on('data', (d: string) => (body += d))
              .on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          },
        );
        req.on('error', reject);
        for (const c of chunks) req.write(c);
        req.end();
      });
    const ok = await post(['{"language":"python",', '"code":"print(6 * 7)"}']);
    assert.equal(ok.status, 200, ok.body);
    assert.equal((JSON.parse(ok.body) as { stdout: string }).stdout, '42\n');
    const big = await post(['{"language":"python","code":"', ...Array.from({ length: 81 }, () => 'x'.repeat(1024 * 1024)), '"}']);
    assert.equal(big.status, 413, big.body.slice(0, 200));
    assert.equal((await call('GET', '/v1/health')).status, 200);
  });

  void it('a body of known length that comes after its head, in pieces, is read whole; one cut short runs nothing', async () => {
    const u = new URL(t.url);
    const body = '{"language":"python","code":"print(6 * 7)"}';
    const head = `POST /v1/runs HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${t.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    /** Send `parts` 30 ms apart on a connection of its own, then end it when `cut`; what came back. */
    const send = (parts: string[], cut: boolean): Promise<string> =>
      new Promise((resolve, reject) => {
        const s = connect(Number(u.port), u.hostname);
        let got = '';
        s.setEncoding('utf8').on('data', (d: string) => {
          got += d;
          if (/\r\n\r\n[\s\S]*\}\s*$/.test(got)) s.end();
        });
        s.on('close', () => resolve(got)).on('error', reject);
        void (async () => {
          for (const p of parts) {
            s.write(p);
            await new Promise((r) => setTimeout(r, 30));
          }
          if (cut) s.end();
        })();
      });
    const whole = await send([head, body.slice(0, 10), body.slice(10)], false);
    assert.match(whole, /^HTTP\/1\.1 200/, whole);
    assert.match(whole, /"stdout":"42\\n"/);
    // Cut short: nothing runs (Node's server answers the broken request 400 itself).
    const cut = await send([head, body.slice(0, 10)], true);
    assert.doesNotMatch(cut, /^HTTP\/1\.1 [25]/, cut);
    assert.equal((await call('GET', '/v1/health')).status, 200);
  });

  void it('a full node says so with 429 CAPACITY_EXCEEDED', async () => {
    const small = await startTestDaemon({ maxSandboxes: 3, maxRuns: 1, warm: 0 });
    try {
      // Runs past --max-runs are refused at once, not queued.
      const runs = await Promise.all(
        [1, 2, 3].map(() =>
          fetch(`${small.url}/v1/runs`, {
            method: 'POST',
            headers: { authorization: `Bearer ${small.token}`, 'content-type': 'application/json' },
            body: JSON.stringify({ language: 'bash', code: 'sleep 0.5' }),
          }),
        ),
      );
      const statuses = runs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 429, 429]);
      await small.daemon.engine.settled();
      for (let i = 0; i < 3; i++)
        assert.equal(
          (
            await fetch(`${small.url}/v1/sandboxes`, {
              method: 'POST',
              headers: { authorization: `Bearer ${small.token}`, 'content-type': 'application/json' },
              body: '{}',
            })
          ).status,
          201,
        );
      const second = await fetch(`${small.url}/v1/sandboxes`, {
        method: 'POST',
        headers: { authorization: `Bearer ${small.token}`, 'content-type': 'application/json' },
        body: '{}',
      });
      assert.equal(second.status, 429);
      assert.equal(second.headers.get('retry-after'), '1');
      assert.equal(((await second.json()) as ErrorBody).error.code, 'CAPACITY_EXCEEDED');
    } finally {
      await small.close();
      assert.deepEqual(await leftovers({ dataDir: small.dataDir, cgroupRoot: small.cgroupRoot }), []);
      removeTestDirs(small);
    }
  });

  void it('node info lists the drivers with what the probe found', async () => {
    const r = await call('GET', '/v1/node');
    const info = r.body as {
      drivers: { name: string; available: boolean; details: Record<string, unknown> }[];
      platform: string;
    };
    assert.equal(info.platform, 'linux/x86_64');
    const ns = info.drivers.find((d) => d.name === 'namespace');
    assert.ok(ns?.available);
    assert.ok(['v1', 'v2'].includes(String(ns.details.cgroup)));
  });

  // The verbs no other e2e file reaches, so that their answers too are checked against the
  // OpenAPI document (test/helpers/response-check.ts).
  void it('a sandbox through its verbs: update, network, signal, stop, start; its volume listed and removed', async () => {
    const made = await call(
      'POST',
      '/v1/sandboxes',
      JSON.stringify({ volumes: [{ volume: 'api-verbs', path: '/data' }], allow: ['example.com'] }),
    );
    assert.equal(made.status, 201);
    const id = (made.body as { id: string }).id;
    const patched = await call('PATCH', `/v1/sandboxes/${id}`, JSON.stringify({ ttl: '2h', labels: { team: 'a' } }));
    assert.equal(patched.status, 200);
    assert.deepEqual((patched.body as { labels: unknown }).labels, { team: 'a' });
    const net = await call('GET', `/v1/sandboxes/${id}/network`);
    assert.deepEqual([net.status, (net.body as { allow: string[] }).allow], [200, ['example.com']]);
    assert.equal((await call('POST', `/v1/sandboxes/${id}/signal`, JSON.stringify({ signal: 'SIGCONT' }))).status, 204);
    const stopped = await call('POST', `/v1/sandboxes/${id}/stop`, '{}');
    assert.deepEqual([stopped.status, (stopped.body as { status: string }).status], [200, 'stopped']);
    const started = await call('POST', `/v1/sandboxes/${id}/start`, '{}');
    assert.deepEqual([started.status, (started.body as { status: string }).status], [200, 'running']);
    const vols = await call('GET', '/v1/volumes');
    assert.ok((vols.body as { volumes: { name: string }[] }).volumes.some((v) => v.name === 'api-verbs'));
    const vol = await call('GET', '/v1/volumes/api-verbs');
    assert.deepEqual([vol.status, (vol.body as { usedBy: string[] }).usedBy], [200, [id]]);
    assert.equal((await call('DELETE', `/v1/sandboxes/${id}`)).status, 204);
    assert.equal((await call('DELETE', '/v1/volumes/api-verbs')).status, 204);
  });

  void it('MCP is stateless: ending a session answers 200 with nothing to end', async () => {
    const r = await fetch(`${t.url}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${t.token}` } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), null);
    assert.equal(await r.text(), '');
  });
});
