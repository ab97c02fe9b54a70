/**
 * Traces: spans of the daemon's work (API requests, the engine, the drivers), exported by OTLP
 * when the operator asks (`realm serve --otlp-endpoint`, or the standard OTEL_* variables).
 *
 * A neutral module: the server, the engine and the drivers all import it, and it imports none of
 * them. Off by default, and then it costs a branch per call: nothing of OpenTelemetry is loaded
 * (its packages are imported by `startTracing` only) and no span is made. Spans nest through
 * OpenTelemetry's context (AsyncLocalStorage), so no function passes a span on.
 *
 *   await traced('sandbox.create', { 'realm.driver': 'namespace' }, async (span) => {
 *     const rec = await make();
 *     span.set({ 'realm.sandbox.id': rec.id });
 *     return rec;
 *   });
 *
 * Attributes name what was done and how it ended, never what a caller sent: no token, code,
 * stdin, command line or environment value goes into one.
 */
import type * as Api from '@opentelemetry/api';
import type { BasicTracerProvider } from '@opentelemetry/sdk-trace-base';

/** Attribute values; an undefined one is left out. */
export type Attrs = Record<string, string | number | boolean | undefined>;

/** What a traced function may add to its span once it knows (a verdict, an id). */
export interface SpanNote {
  /** Add attributes (undefined values are skipped). */
  set(attrs: Attrs): void;
  /** Rename the span (a server span knows its route only after routing). */
  rename(name: string): void;
  /** Mark the span failed (a 5xx answer) without an exception. */
  fail(message: string): void;
}

const NOTHING: SpanNote = { set: () => undefined, rename: () => undefined, fail: () => undefined };

interface Live {
  api: typeof Api;
  tracer: Api.Tracer;
  provider: BasicTracerProvider;
  /** What `GET /v1/node` shows: where spans go (no credentials). */
  endpoint: string;
  /** Daemons of this process tracing (tests start several): the last one's stop shuts it down. */
  users: number;
}

let live: Live | null = null;

const OFF = Object.freeze({ enabled: false });

/** Whether spans are being made (and where they go), for `GET /v1/node` and `realm doctor`. */
export function tracingState(): { enabled: boolean; endpoint?: string } {
  // The gateway's fast lane asks at every request: off, the answer is one shared object.
  return live ? { enabled: true, endpoint: live.endpoint } : OFF;
}

function clean(attrs: Attrs): Api.Attributes {
  const out: Api.Attributes = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) out[k] = v;
  return out;
}

function noteOf(api: typeof Api, span: Api.Span): SpanNote {
  return {
    set: (attrs) => span.setAttributes(clean(attrs)),
    rename: (name) => span.updateName(name),
    fail: (message) => span.setStatus({ code: api.SpanStatusCode.ERROR, message }),
  };
}

/** End `span` after `fn`'s promise: an error marks it failed (its message only: no stack, no input). */
async function within<T>(api: typeof Api, span: Api.Span, fn: (note: SpanNote) => Promise<T>): Promise<T> {
  try {
    return await fn(noteOf(api, span));
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    span.setAttributes(clean({ 'error.type': typeof code === 'string' ? code : ((e as Error).name ?? 'Error') }));
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: (e as Error).message ?? String(e) });
    throw e;
  } finally {
    span.end();
  }
}

/** Run `fn` in a child span of the current one (a root span when there is none); off: just `fn`. */
export function traced<T>(
  name: string,
  attrs: Attrs,
  fn: (span: SpanNote) => Promise<T>,
  /** `client`: a call to another server (a peer node), whose span the callee continues. */
  o?: { client?: boolean },
): Promise<T> {
  if (!live) return fn(NOTHING);
  const { api, tracer } = live;
  const kind = o?.client ? api.SpanKind.CLIENT : api.SpanKind.INTERNAL;
  return tracer.startActiveSpan(name, { kind, attributes: clean(attrs) }, (span) => within(api, span, fn));
}

/**
 * Work of the daemon's own that a request set going but does not wait for (a warm pool's refill):
 * a trace of its own, not a child of the request that happened to start it. Off: just `fn`.
 */
export function background<T>(name: string, attrs: Attrs, fn: (span: SpanNote) => Promise<T>): Promise<T> {
  if (!live) return fn(NOTHING);
  const { api, tracer } = live;
  return tracer.startActiveSpan(name, { attributes: clean(attrs), root: true }, api.ROOT_CONTEXT, (span) =>
    within(api, span, fn),
  );
}

/** `traced` for synchronous work (a cgroup's files written). */
export function tracedSync<T>(name: string, attrs: Attrs, fn: () => T): T {
  if (!live) return fn();
  const { api, tracer } = live;
  return tracer.startActiveSpan(name, { attributes: clean(attrs) }, (span) => {
    try {
      return fn();
    } catch (e) {
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: (e as Error).message ?? String(e) });
      throw e;
    } finally {
      span.end();
    }
  });
}

/**
 * A server span for one incoming request, continuing the caller's trace when it sent a W3C
 * `traceparent` (`header` reads the request's headers). Off: just `fn`.
 */
export function tracedRequest<T>(
  name: string,
  header: (name: string) => string | undefined,
  attrs: Attrs,
  fn: (span: SpanNote) => Promise<T>,
): Promise<T> {
  if (!live) return fn(NOTHING);
  const { api, tracer } = live;
  const parent = api.propagation.extract(api.ROOT_CONTEXT, undefined, {
    keys: () => ['traceparent', 'tracestate'],
    get: (_carrier, key) => header(key),
  });
  return tracer.startActiveSpan(name, { kind: api.SpanKind.SERVER, attributes: clean(attrs) }, parent, (span) =>
    within(api, span, fn),
  );
}

/**
 * The headers (`traceparent`, `tracestate`) that carry the current span to a request this node
 * makes to another (cluster forwarding, the gateway's upstreams); none when tracing is off.
 */
export function traceHeaders(): Record<string, string> {
  if (!live) return {};
  const out: Record<string, string> = {};
  live.api.propagation.inject(live.api.context.active(), out);
  return out;
}

/** What the operator asked for: an OTLP/HTTP base URL (`--otlp-endpoint`), else the OTEL_* variables. */
export interface TracingOptions {
  /** `--otlp-endpoint`: the collector's base URL; spans go to `<it>/v1/traces`. */
  endpoint?: string | undefined;
  /** The service.instance.id of the spans (this node's id). */
  instance: string;
  version: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Where spans go: `--otlp-endpoint` (plus /v1/traces), else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as
 * is, else OTEL_EXPORTER_OTLP_ENDPOINT plus /v1/traces; null when none is set or the variables
 * turn traces off (OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none). A URL that is not
 * http(s) is refused with what to write.
 */
export function tracesUrl(endpoint: string | undefined, env: NodeJS.ProcessEnv = process.env): string | null {
  const join = (base: string): string => `${base.replace(/\/+$/, '')}/v1/traces`;
  let url: string;
  let from: string;
  if (endpoint !== undefined && endpoint !== '') {
    [url, from] = [join(endpoint), `--otlp-endpoint ${endpoint}`];
  } else {
    if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return null;
    if (env.OTEL_TRACES_EXPORTER !== undefined && !/^\s*(otlp)?\s*$/.test(env.OTEL_TRACES_EXPORTER)) {
      if (env.OTEL_TRACES_EXPORTER.trim() === 'none') return null;
      throw new Error(`OTEL_TRACES_EXPORTER=${env.OTEL_TRACES_EXPORTER}: realm exports traces by otlp only; write otlp or none`);
    }
    const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
    const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
    if (traces) [url, from] = [traces, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=${traces}`];
    else if (base) [url, from] = [join(base), `OTEL_EXPORTER_OTLP_ENDPOINT=${base}`];
    else return null;
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${from}: write the collector's OTLP/HTTP URL, e.g. http://127.0.0.1:4318`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new Error(`${from}: realm exports OTLP over HTTP; write an http:// or https:// URL, e.g. http://127.0.0.1:4318`);
  return url;
}

/** The URL without user info or query (they may hold credentials), to show. */
function shown(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/**
 * Start exporting spans (OTLP/HTTP protobuf, batched) if an endpoint is set; the OpenTelemetry
 * packages load only now. Returns the stop, which flushes what is queued (or null when off).
 */
export async function startTracing(opts: TracingOptions): Promise<(() => Promise<void>) | null> {
  const url = tracesUrl(opts.endpoint, opts.env ?? process.env);
  if (url === null) return null;
  if (!live) {
    const [api, { AsyncLocalStorageContextManager }, { W3CTraceContextPropagator }, sdk, exporter, resources, semconv] =
      await Promise.all([
        import('@opentelemetry/api'),
        import('@opentelemetry/context-async-hooks'),
        import('@opentelemetry/core'),
        import('@opentelemetry/sdk-trace-base'),
        import('@opentelemetry/exporter-trace-otlp-proto'),
        import('@opentelemetry/resources'),
        import('@opentelemetry/semantic-conventions'),
      ]);
    const env = opts.env ?? process.env;
    // OTEL_RESOURCE_ATTRIBUTES first, then ours (OTEL_SERVICE_NAME still names the service).
    const resource = resources.detectResources({ detectors: [resources.envDetector] }).merge(
      resources.resourceFromAttributes({
        [semconv.ATTR_SERVICE_NAME]: env.OTEL_SERVICE_NAME?.trim() || 'realm',
        [semconv.ATTR_SERVICE_VERSION]: opts.version,
        'service.instance.id': opts.instance,
      }),
    );
    const provider = new sdk.BasicTracerProvider({
      resource,
      spanProcessors: [new sdk.BatchSpanProcessor(new exporter.OTLPTraceExporter({ url }))],
    });
    api.context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    api.propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    live = { api, provider, tracer: provider.getTracer('realm', opts.version), endpoint: shown(url), users: 0 };
  }
  live.users++;
  let stopped = false;
  return async () => {
    if (stopped || !live) return;
    stopped = true;
    if (--live.users > 0) return;
    const { api, provider } = live;
    live = null;
    // Spans still queued are sent now: a daemon's last requests are in its trace.
    await provider.shutdown().catch(() => undefined);
    api.context.disable();
    api.propagation.disable();
  };
}
