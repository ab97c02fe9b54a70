/**
 * Traces on a real `realm serve`: an OTLP/HTTP receiver written here (protobuf, decoded with
 * protobufjs against the OTLP trace schema) gets the spans of a run and of a sandbox's create and
 * exec. The API's server span continues the client's trace (its traceparent) and is named by the
 * route's pattern; the engine's and the driver's spans are its descendants; no attribute holds
 * the token, the code, stdin, the command or an environment value. Without --otlp-endpoint
 * nothing is sent, and `GET /v1/node` and `realm doctor` say whether tracing is on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import protobuf from 'protobufjs';
import { namespaceSkipReason, removeTestDirs } from '../helpers/daemon.js';
import { type SpawnedDaemon, spawnDaemon } from '../helpers/spawned-daemon.js';
import { realm } from '../helpers/cli.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping otel tests: ${skip}`);

/** The parts of opentelemetry/proto/collector/trace/v1 (and common, resource, trace) these tests read. */
const OTLP = protobuf
  .parse(
    `
syntax = "proto3";
message AnyValue { oneof value { string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4; bytes bytes_value = 7; } }
message KeyValue { string key = 1; AnyValue value = 2; }
message Resource { repeated KeyValue attributes = 1; }
message Status { string message = 2; int32 code = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4; string name = 5;
  int32 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
  Status status = 15;
}
message ScopeSpans { repeated Span spans = 2; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
`,
  )
  .root.lookupType('ExportTraceServiceRequest');

type Value = string | number | boolean;
interface Got {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  /** 1 internal, 2 server, 3 client. */
  kind: number;
  attrs: Record<string, Value>;
  resource: Record<string, Value>;
  status: number;
}

interface Decoded {
  resourceSpans?: {
    resource?: { attributes?: KV[] };
    scopeSpans?: {
      spans?: {
        traceId: Uint8Array;
        spanId: Uint8Array;
        parentSpanId: Uint8Array;
        name: string;
        kind: number;
        attributes?: KV[];
        status?: { code?: number };
      }[];
    }[];
  }[];
}
interface KV {
  key: string;
  value?: { stringValue?: string; boolValue?: boolean; intValue?: number | { toNumber(): number }; doubleValue?: number };
}

function attrs(kvs: KV[] | undefined): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const { key, value: v } of kvs ?? []) {
    const i = v?.intValue;
    out[key] = v?.stringValue ?? v?.boolValue ?? v?.doubleValue ?? (typeof i === 'object' ? i.toNumber() : (i ?? ''));
  }
  return out;
}

const hex = (b: Uint8Array | undefined): string => Buffer.from(b ?? []).toString('hex');

/** An OTLP/HTTP receiver on loopback: every span it was sent, and each request's content type. */
async function receiver(port = 0): Promise<{ url: string; spans: Got[]; requests: string[]; close: () => Promise<void> }> {
  const spans: Got[] = [];
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers['content-type'] ?? ''}`);
      const msg = OTLP.toObject(OTLP.decode(Buffer.concat(chunks))) as Decoded;
      for (const rs of msg.resourceSpans ?? []) {
        const resource = attrs(rs.resource?.attributes);
        for (const ss of rs.scopeSpans ?? [])
          for (const s of ss.spans ?? [])
            spans.push({
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              parentSpanId: hex(s.parentSpanId),
              name: s.name,
              kind: s.kind,
              attrs: attrs(s.attributes),
              resource,
              status: s.status?.code ?? 0,
            });
      }
      // An empty ExportTraceServiceResponse: all accepted.
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    requests,
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      return closed;
    },
  };
}

/** A W3C traceparent of a client's span: its trace id, its span id. */
function clientSpan(): { traceId: string; spanId: string; header: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, header: `00-${traceId}-${spanId}-01` };
}

/** Every span below `root` in `spans` (children, their children, …). */
function descendants(spans: Got[], root: Got): Got[] {
  const out: Got[] = [];
  const walk = (id: string): void => {
    for (const s of spans.filter((x) => x.parentSpanId === id && x.traceId === root.traceId)) {
      out.push(s);
      walk(s.spanId);
    }
  };
  walk(root.spanId);
  return out;
}

void describe('traces (OpenTelemetry, OTLP/HTTP)', { skip }, () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  /** A `realm serve` of its own with these flags (no OTEL_* variables from this process). */
  const daemon = async (args: string[]): Promise<{ d: SpawnedDaemon; token: string }> => {
    const dataDir = mkdtempSync(join(tmpdir(), 'realm-test-otel-'));
    const cgroupRoot = `realm-test-otel-${process.pid}-${randomBytes(3).toString('hex')}`;
    const noOtel = Object.fromEntries(
      Object.keys(process.env)
        .filter((k) => k.startsWith('OTEL_'))
        .map((k) => [k, undefined]),
    );
    const d = await spawnDaemon({ dataDir, cgroupRoot, args, env: noOtel }).catch((e: unknown) => {
      removeTestDirs({ dataDir, cgroupRoot });
      throw e;
    });
    cleanups.push(async () => {
      await d.stop();
      removeTestDirs({ dataDir, cgroupRoot });
    });
    return { d, token: readFileSync(join(dataDir, 'admin-token'), 'utf8').trim() };
  };

  void it('a run and a sandbox create+exec reach the collector, in the client’s traces, without secrets', async () => {
    const rx = await receiver();
    cleanups.push(() => rx.close());
    const { d, token } = await daemon(['--otlp-endpoint', rx.url]);
    const SECRET_CODE = `code-${randomBytes(6).toString('hex')}`;
    const SECRET_ENV = `env-${randomBytes(6).toString('hex')}`;
    const SECRET_CMD = `cmd-${randomBytes(6).toString('hex')}`;
    const SECRET_STDIN = `stdin-${randomBytes(6).toString('hex')}`;
    const call = async (
      method: string,
      path: string,
      body: unknown,
      traceparent: string,
      requestId?: string,
    ): Promise<unknown> => {
      const r = await fetch(`${d.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          traceparent,
          ...(requestId ? { 'x-request-id': requestId } : {}),
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
      const text = await r.text();
      assert.ok(r.ok, `${method} ${path}: ${r.status} ${text}`);
      return text ? JSON.parse(text) : undefined;
    };

    // The node says tracing is on, and where to; so does `realm doctor`.
    const node = (await call('GET', '/v1/node', undefined, clientSpan().header)) as {
      tracing: { enabled: boolean; endpoint: string };
    };
    assert.deepEqual(node.tracing, { enabled: true, endpoint: `${rx.url}/v1/traces` });
    const doctor = await realm(['doctor'], { env: { REALM_URL: d.url, REALM_TOKEN: token } });
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, new RegExp(`tracing: on, spans exported by OTLP to ${rx.url}/v1/traces`));

    const runSpan = clientSpan();
    const ran = (await call(
      'POST',
      '/v1/runs',
      { language: 'python', code: `import sys; print("${SECRET_CODE}", sys.stdin.read())`, stdin: SECRET_STDIN },
      runSpan.header,
      'req-otel-run-1',
    )) as { stdout: string; verdict: string };
    assert.equal(ran.verdict, 'ok');
    assert.equal(ran.stdout, `${SECRET_CODE} ${SECRET_STDIN}\n`);

    const createSpan = clientSpan();
    const sb = (await call('POST', '/v1/sandboxes', { env: { API_KEY: SECRET_ENV } }, createSpan.header)) as { id: string };
    const execSpan = clientSpan();
    const ex = (await call(
      'POST',
      `/v1/sandboxes/${sb.id}/exec`,
      { command: `echo ${SECRET_CMD} "$API_KEY"` },
      execSpan.header,
    )) as {
      stdout: string;
      exitCode: number;
    };
    assert.equal(ex.stdout, `${SECRET_CMD} ${SECRET_ENV}\n`);
    await call('DELETE', `/v1/sandboxes/${sb.id}`, undefined, clientSpan().header);
    // The daemon's stop flushes the batch: every span of the requests above is sent by then.
    await d.stop();

    const spans = rx.spans;
    assert.ok(spans.length > 0, 'no spans arrived');
    assert.ok(
      rx.requests.every((r) => r.startsWith('POST /v1/traces application/x-protobuf')),
      rx.requests.join('\n'),
    );
    assert.equal(spans[0]?.resource['service.name'], 'realm');

    // The run: a server span in the client's trace, the client's span its parent, named by route.
    const server = spans.find((s) => s.traceId === runSpan.traceId && s.kind === 2);
    assert.ok(server, `no server span in the run's trace: ${JSON.stringify(spans.map((s) => s.name))}`);
    assert.equal(server.parentSpanId, runSpan.spanId);
    assert.equal(server.name, 'POST /v1/runs');
    assert.equal(server.attrs['http.route'], '/v1/runs');
    assert.equal(server.attrs['http.request.method'], 'POST');
    assert.equal(server.attrs['http.response.status_code'], 200);
    assert.equal(server.attrs['realm.request_id'], 'req-otel-run-1');
    const below = descendants(spans, server);
    const run = below.find((s) => s.name === 'run');
    assert.ok(run, `no run span below the server span: ${JSON.stringify(below.map((s) => s.name))}`);
    assert.equal(run.parentSpanId, server.spanId);
    assert.equal(run.attrs['realm.language'], 'python');
    assert.equal(run.attrs['realm.verdict'], 'ok');
    assert.equal(run.attrs['process.exit.code'], 0);
    assert.equal(typeof run.attrs['realm.cpu_ms'], 'number');
    // No warm pool (--warm 0): the driver prepares the run's sandbox, under the run.
    const names = below.map((s) => s.name);
    for (const n of ['run.prepare', 'namespace.prepare_run', 'run.exec'])
      assert.ok(names.includes(n), `${n} missing: ${names.join(', ')}`);

    // The create: sandbox.create, with the driver's steps below it.
    const created = spans.find((s) => s.traceId === createSpan.traceId && s.kind === 2);
    assert.ok(created);
    assert.equal(created.parentSpanId, createSpan.spanId);
    assert.equal(created.attrs['http.route'], '/v1/sandboxes');
    const createBelow = descendants(spans, created);
    const create = createBelow.find((s) => s.name === 'sandbox.create');
    assert.ok(create, JSON.stringify(createBelow.map((s) => s.name)));
    assert.equal(create.attrs['realm.driver'], 'namespace');
    assert.equal(create.attrs['realm.image'], 'host');
    assert.equal(create.attrs['realm.sandbox.id'], sb.id);
    const driverSteps = descendants(spans, create).map((s) => s.name);
    for (const n of ['namespace.create', 'namespace.cgroup_setup', 'namespace.bwrap_start'])
      assert.ok(driverSteps.includes(n), `${n} missing: ${driverSteps.join(', ')}`);

    // The exec: the route's pattern, never the sandbox's id in it.
    const exec = spans.find((s) => s.traceId === execSpan.traceId && s.kind === 2);
    assert.ok(exec);
    assert.equal(exec.name, 'POST /v1/sandboxes/:id/exec');
    assert.equal(exec.attrs['http.route'], '/v1/sandboxes/:id/exec');
    const execChild = descendants(spans, exec).find((s) => s.name === 'sandbox.exec');
    assert.ok(execChild);
    assert.equal(execChild.attrs['process.exit.code'], 0);
    assert.equal(execChild.attrs['realm.verdict'], 'ok');

    // Nothing a caller sent in confidence is in any span's name or attributes.
    const text = JSON.stringify(spans);
    for (const secret of [token, token.slice(-20), SECRET_CODE, SECRET_ENV, SECRET_CMD, SECRET_STDIN, 'API_KEY'])
      assert.ok(!text.includes(secret), `a span holds ${secret}`);
  });

  void it('without --otlp-endpoint nothing is exported, and the node says tracing is off', async (t) => {
    // On OTLP/HTTP's default port, where an exporter left on by default would send.
    const rx = await receiver(4318).catch(() => undefined);
    if (!rx) return t.skip('127.0.0.1:4318 is taken (a collector of this host?): nothing to listen with');
    cleanups.push(() => rx.close());
    const { d, token } = await daemon([]);
    const node = (await (await fetch(`${d.url}/v1/node`, { headers: { authorization: `Bearer ${token}` } })).json()) as {
      tracing: { enabled: boolean };
    };
    assert.deepEqual(node.tracing, { enabled: false });
    const doctor = await realm(['doctor'], { env: { REALM_URL: d.url, REALM_TOKEN: token } });
    assert.equal(doctor.code, 0, doctor.stderr);
    assert.match(doctor.stdout, /^tracing: off/m);
    const r = await fetch(`${d.url}/v1/runs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', traceparent: clientSpan().header },
      body: JSON.stringify({ language: 'python', code: 'print(1)' }),
    });
    assert.equal(r.status, 200);
    await d.stop();
    assert.deepEqual(rx.requests, []);
    assert.deepEqual(rx.spans, []);
  });
});
