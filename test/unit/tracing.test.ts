/**
 * Tracing off loads nothing: no source imports an OpenTelemetry package but for its types (only
 * src/telemetry/trace.ts loads them, when tracing starts), and src/telemetry/ imports nothing of
 * realm's, so the engine and the drivers may use it. Where traces go: --otlp-endpoint first, then OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (as is), then
 * OTEL_EXPORTER_OTLP_ENDPOINT (plus /v1/traces); none, OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none:
 * off. And off means off: the helpers run the work and make nothing.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import {
  background,
  startTracing,
  traceHeaders,
  traced,
  tracedRequest,
  tracesUrl,
  tracingState,
} from '../../src/telemetry/trace.js';

void describe('tracing config', () => {
  void it('the flag, then the traces variable, then the base variable', () => {
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318/',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4318/custom',
    };
    assert.equal(tracesUrl('http://flag:4318', env), 'http://flag:4318/v1/traces');
    assert.equal(tracesUrl('https://flag/otlp/', {}), 'https://flag/otlp/v1/traces');
    assert.equal(tracesUrl(undefined, env), 'http://traces:4318/custom');
    assert.equal(tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318/' }), 'http://base:4318/v1/traces');
  });

  void it('off without an endpoint, or when the variables turn it off', () => {
    assert.equal(tracesUrl(undefined, {}), null);
    assert.equal(tracesUrl('', {}), null);
    const base = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318' };
    assert.equal(tracesUrl(undefined, { ...base, OTEL_SDK_DISABLED: 'true' }), null);
    assert.equal(tracesUrl(undefined, { ...base, OTEL_TRACES_EXPORTER: 'none' }), null);
    assert.equal(tracesUrl(undefined, { ...base, OTEL_TRACES_EXPORTER: 'otlp' }), 'http://base:4318/v1/traces');
    // The operator's flag is explicit: it wins over a disabling variable.
    assert.equal(tracesUrl('http://flag:4318', { OTEL_SDK_DISABLED: 'true' }), 'http://flag:4318/v1/traces');
  });

  void it('refuses what it cannot export to, saying what to write', () => {
    assert.throws(() => tracesUrl('127.0.0.1:4318', {}), /--otlp-endpoint 127\.0\.0\.1:4318: .*http:\/\//);
    assert.throws(() => tracesUrl('grpc://collector:4317', {}), /exports OTLP over HTTP/);
    assert.throws(
      () => tracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'not a url' }),
      /OTEL_EXPORTER_OTLP_ENDPOINT=not a url/,
    );
    assert.throws(() => tracesUrl(undefined, { OTEL_TRACES_EXPORTER: 'zipkin' }), /otlp or none/);
  });

  void it('off, the helpers only run the work', async () => {
    assert.deepEqual(tracingState(), { enabled: false });
    assert.deepEqual(traceHeaders(), {});
    let notes = 0;
    const r = await traced('x', { a: 1 }, (span) => {
      span.set({ b: 2 });
      notes++;
      return Promise.resolve(7);
    });
    assert.equal(r, 7);
    assert.equal(await background('y', {}, () => Promise.resolve(8)), 8);
    assert.equal(
      await tracedRequest(
        'GET',
        () => '00-' + 'a'.repeat(32) + '-' + 'b'.repeat(16) + '-01',
        {},
        () => Promise.resolve(9),
      ),
      9,
    );
    await assert.rejects(
      traced('z', {}, () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(notes, 1);
  });
});

/** The repository (this file runs as dist/test/unit/tracing.test.js). */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** Imports of `@opentelemetry/*` that load code (not `import type`), and relative imports of src/telemetry/, by file. */
function otelLoads(file: string): { otel: string[]; relative: string[] } {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.ES2022, false);
  const otel: string[] = [];
  const rel: string[] = [];
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const spec = n.moduleSpecifier.text;
      const typeOnly = ts.isImportDeclaration(n) ? n.importClause?.isTypeOnly === true : n.isTypeOnly;
      if (spec.startsWith('@opentelemetry/') && !typeOnly) otel.push(`import ${spec}`);
      if (spec.startsWith('.')) rel.push(spec);
    }
    if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = n.arguments[0];
      if (arg && ts.isStringLiteral(arg) && arg.text.startsWith('@opentelemetry/')) otel.push(`import(${arg.text})`);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
  return { otel, relative: rel };
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => join(e.parentPath, e.name));
}

void describe('tracing loads lazily', () => {
  void it('only src/telemetry/trace.ts loads OpenTelemetry, and only by import(); src/telemetry/ imports nothing of realm', () => {
    const files = tsFiles(join(ROOT, 'src'));
    assert.ok(files.length > 100, 'the sources were found');
    const bad: string[] = [];
    let dynamic = 0;
    for (const f of files) {
      const name = relative(ROOT, f);
      const { otel, relative: rel } = otelLoads(f);
      for (const o of otel) {
        if (name === 'src/telemetry/trace.ts' && o.startsWith('import(')) dynamic++;
        else bad.push(`${name}: ${o}`);
      }
      if (name.startsWith('src/telemetry/')) for (const r of rel) bad.push(`${name} imports ${r}`);
    }
    assert.deepEqual(bad, []);
    assert.ok(dynamic >= 5, `trace.ts loads the SDK by import() (${dynamic} found)`);
  });
});

void describe('tracing on (in this process)', () => {
  void it('continues the caller’s trace, hands its own span on to the next hop, keeps background work apart, and flushes on stop', async () => {
    const posts: string[] = [];
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        posts.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers['content-type'] ?? ''}`);
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const stop = await startTracing({ endpoint: url, instance: 'node-1', version: 'test', env: {} });
      assert.ok(stop);
      assert.deepEqual(tracingState(), { enabled: true, endpoint: `${url}/v1/traces` });
      const [traceId, parent] = ['1'.repeat(32), '2'.repeat(16)];
      const got = await tracedRequest(
        'GET',
        (h) => (h === 'traceparent' ? `00-${traceId}-${parent}-01` : undefined),
        {},
        () =>
          traced(
            'cluster.forward',
            {},
            async () => ({
              hop: traceHeaders(),
              apart: await background('warm.build', {}, () => Promise.resolve(traceHeaders())),
            }),
            { client: true },
          ),
      );
      const [, hopTrace, hopSpan, flags] = (got.hop.traceparent ?? '').split('-');
      assert.equal(hopTrace, traceId, 'the next hop continues the caller’s trace');
      assert.ok(hopSpan && hopSpan !== parent, 'as a child of this hop’s span, not the caller’s');
      assert.equal(flags, '01');
      assert.notEqual((got.apart.traceparent ?? '').split('-')[1], traceId, 'background work is a trace of its own');
      await stop();
      assert.deepEqual(tracingState(), { enabled: false });
      assert.deepEqual(traceHeaders(), {});
      assert.ok(posts.length >= 1 && posts.every((p) => p === 'POST /v1/traces application/x-protobuf'), posts.join('; '));
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
