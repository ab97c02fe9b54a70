/**
 * Every answer a test daemon gives is checked against the OpenAPI document it serves: the status
 * must be documented for the operation, the content type must be one the document states (none
 * for a 204), and a JSON body must match the schema (Ajv, JSON Schema 2020-12). Streams (SSE,
 * tar, bytes) are checked by content type only; WebSocket upgrades are not HTTP answers.
 *
 * Test-only: the check wraps node's ServerResponse in the test process and looks only at answers
 * of the daemons registered with `watchResponses`. A mismatch is recorded, and the daemon's
 * close() throws with the list (failing the test or suite that started it). Which operations
 * answered is written, per test file, to .realm-test/openapi-hits/ (test/unit/openapi.test.ts
 * lists what no e2e file exercised).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { WebSocketServer } from 'ws';
import { openapiDocument } from '../../src/daemon/openapi.js';

interface ResponseSpec {
  content?: Record<string, { schema?: unknown }>;
}
interface Operation {
  operationId: string;
  security?: unknown[];
  responses: Record<string, ResponseSpec>;
}
export interface Doc {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown> };
}

/** Where each test file leaves the operations (and statuses) its daemons answered. */
export const HITS_DIR = join(fileURLToPath(new URL('../../../', import.meta.url)), '.realm-test', 'openapi-hits');

const doc = openapiDocument() as Doc;
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false });
ajv.addSchema({ $id: 'realm', components: doc.components });

/** Document paths as patterns, the most literal first (/v1/images/built before /v1/images/{ref}). */
const routes = Object.entries(doc.paths)
  .map(([path, ops]) => ({
    path,
    ops,
    re: new RegExp(
      `^${path
        .split('/')
        .map((s) => (s.startsWith('{') ? '[^/]+' : s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/')}/?$`,
    ),
    literal: path.split('/').filter((s) => s && !s.startsWith('{')).length,
  }))
  .sort((a, b) => b.literal - a.literal);

/** The document path and operation a request reaches, if any. */
export function operationOf(method: string, url: string): { path: string; op: Operation } | undefined {
  const path = url.split('?')[0] ?? '';
  for (const r of routes) {
    const op = r.ops[method.toLowerCase()];
    if (op && r.re.test(path)) return { path: r.path, op };
  }
  return undefined;
}

const compiled = new Map<string, ValidateFunction>();
function validator(schema: unknown): ValidateFunction {
  const key = JSON.stringify(schema);
  let v = compiled.get(key);
  if (!v) {
    // Refs point into the document (#/components/…), added to Ajv as "realm".
    v = ajv.compile(JSON.parse(key.replaceAll('"#/components/', '"realm#/components/')) as object);
    compiled.set(key, v);
  }
  return v;
}

/** What is wrong with an answer, by the document; undefined when it matches. */
export function checkAnswer(
  method: string,
  url: string,
  status: number,
  contentType: string | undefined,
  body: Buffer,
): string | undefined {
  const where = `${method} ${url.split('?')[0] ?? ''} → ${status}`;
  const found = operationOf(method, url);
  const errorSpec = doc.paths['/v1/sandboxes']?.get?.responses['4XX'] ?? {};
  // A path the document does not list (404, 405) still answers realm's error shape.
  const spec = found
    ? (found.op.responses[String(status)] ?? found.op.responses[`${String(status)[0]}XX`])
    : status >= 400
      ? errorSpec
      : undefined;
  if (!spec) return found ? `${where}: status ${status} is not in the document for ${found.op.operationId}` : undefined;
  const media = contentType?.split(';')[0]?.trim().toLowerCase();
  if (!spec.content) {
    if (contentType !== undefined) return `${where}: the document states no body, the answer carries content-type ${contentType}`;
    if (body.length)
      return `${where}: the document states no body, the answer has ${body.length} bytes (${contentType ?? 'no content type'})`;
    return undefined;
  }
  if (!media || !(media in spec.content))
    return `${where}: content-type ${contentType ?? '(none)'}, the document states ${Object.keys(spec.content).join(' or ')}`;
  if (media !== 'application/json') return undefined;
  const schema = spec.content[media]?.schema;
  if (!schema) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return `${where}: the body is not JSON: ${body.subarray(0, 200).toString('utf8')}`;
  }
  const v = validator(schema);
  if (v(value)) return undefined;
  const errs = (v.errors ?? [])
    .slice(0, 5)
    .map(
      (e) =>
        `${e.instancePath || '/'} ${e.message ?? ''}${e.params && 'additionalProperty' in e.params ? ` (${String(e.params.additionalProperty)})` : ''}`,
    );
  return `${where}: the body does not match ${JSON.stringify(schema)}: ${errs.join('; ')}; body: ${body.subarray(0, 300).toString('utf8')}`;
}

/** The hits file of a test file: `e2e-api.test` for dist/test/e2e/api.test.js. */
export function hitsName(testFile: string): string {
  return `${basename(dirname(testFile))}-${basename(testFile, '.js')}`;
}

interface Watched {
  port?: number;
  socket: string;
  failures: string[];
}
const watched: Watched[] = [];
/** operationId → statuses it answered with, in this process. */
const hits = new Map<string, Set<number>>();

function daemonOf(res: ServerResponse): Watched | undefined {
  return watched.length ? daemonOfSocket((res.req as IncomingMessage | undefined)?.socket) : undefined;
}

function daemonOfSocket(socket: unknown): Watched | undefined {
  const addr = (socket as (Socket & { server?: { address(): unknown } }) | null)?.server?.address();
  return watched.find((w) =>
    typeof addr === 'string' ? addr === w.socket : (addr as { port?: number } | null)?.port === w.port,
  );
}

const MAX_KEPT = 64 * 1024 * 1024;
const state = new WeakMap<
  ServerResponse,
  { status: number; contentType: string | undefined; chunks: Buffer[]; size: number; json: boolean }
>();

function headerOf(headers: unknown, name: string): string | undefined {
  if (Array.isArray(headers)) {
    // [k, v, k, v] or [[k, v], …]
    const flat = headers.flat() as unknown[];
    for (let i = 0; i + 1 < flat.length; i += 2) if (String(flat[i]).toLowerCase() === name) return String(flat[i + 1]);
    return undefined;
  }
  if (headers && typeof headers === 'object') {
    for (const [k, v] of Object.entries(headers as OutgoingHttpHeaders))
      if (k.toLowerCase() === name && v !== undefined) return Array.isArray(v) ? v.join(', ') : String(v);
  }
  return undefined;
}

function hit(method: string, url: string, status: number): void {
  const found = operationOf(method, url);
  if (!found) return;
  const set = hits.get(found.op.operationId) ?? new Set<number>();
  set.add(status);
  hits.set(found.op.operationId, set);
}

function keep(res: ServerResponse, chunk: unknown, encoding?: unknown): void {
  const s = state.get(res);
  if (!s?.json || chunk === undefined || chunk === null || typeof chunk === 'function' || s.size > MAX_KEPT) return;
  const buf =
    typeof chunk === 'string'
      ? Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8')
      : Buffer.from(chunk as Uint8Array);
  s.chunks.push(buf);
  s.size += buf.length;
}

let installed = false;
function install(): void {
  if (installed) return;
  installed = true;
  const proto = ServerResponse.prototype as unknown as Record<string, (...args: unknown[]) => unknown>;
  const writeHead = proto.writeHead as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  const write = proto.write as (this: ServerResponse, ...args: unknown[]) => boolean;
  const end = proto.end as (this: ServerResponse, ...args: unknown[]) => ServerResponse;
  proto.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    const out = writeHead.apply(this, args);
    if (daemonOf(this)) {
      const headers = typeof args[1] === 'string' ? args[2] : args[1];
      const contentType = headerOf(headers, 'content-type') ?? headerOf(this.getHeaders(), 'content-type');
      state.set(this, { status: Number(args[0]), contentType, chunks: [], size: 0, json: (contentType ?? '').includes('json') });
    }
    return out;
  };
  proto.write = function (this: ServerResponse, ...args: unknown[]) {
    try {
      keep(this, args[0], args[1]);
    } catch {
      /* never break the answer */
    }
    return write.apply(this, args);
  };
  proto.end = function (this: ServerResponse, ...args: unknown[]) {
    try {
      check(this, args);
    } catch (e) {
      // The check must never break the answer it looks at.
      daemonOf(this)?.failures.push(`the answer check itself failed: ${String(e)}`);
    }
    return end.apply(this, args);
  };
  function check(res: ServerResponse, args: unknown[]): void {
    const d = daemonOf(res);
    if (d && !res.writableEnded) {
      if (!state.has(res)) {
        // Headers written implicitly (setHeader, then end).
        const contentType = headerOf(res.getHeaders(), 'content-type');
        state.set(res, { status: res.statusCode, contentType, chunks: [], size: 0, json: (contentType ?? '').includes('json') });
      }
      keep(res, args[0], args[1]);
      const s = state.get(res);
      const method = res.req.method ?? 'GET';
      const url = res.req.url ?? '/';
      if (s && method !== 'HEAD' && method !== 'OPTIONS') {
        hit(method, url, s.status);
        if (s.size <= MAX_KEPT) {
          const problem = checkAnswer(method, url, s.status, s.contentType, Buffer.concat(s.chunks));
          if (problem) d.failures.push(problem);
        }
      }
    }
  }
  // A WebSocket route answers by upgrading the connection (101), which is no ServerResponse.
  const wsProto = WebSocketServer.prototype as unknown as { handleUpgrade: (req: IncomingMessage, ...rest: unknown[]) => void };
  const handleUpgrade = wsProto.handleUpgrade;
  wsProto.handleUpgrade = function (this: WebSocketServer, req: IncomingMessage, ...rest: unknown[]) {
    if (daemonOfSocket(req.socket)) hit(req.method ?? 'GET', req.url ?? '/', 101);
    handleUpgrade.call(this, req, ...rest);
  };
  process.on('exit', () => {
    if (!hits.size) return;
    mkdirSync(HITS_DIR, { recursive: true });
    const file = hitsName(process.argv[1] ?? `pid-${process.pid}`);
    writeFileSync(
      join(HITS_DIR, `${file}.json`),
      JSON.stringify(Object.fromEntries([...hits].map(([id, s]) => [id, [...s].sort()])), null, 1),
    );
  });
}

/**
 * Check every answer of the daemon listening at `url` and `socket` from now on; the returned
 * function stops watching it and throws when an answer did not match the document.
 */
export function watchResponses(url: string, socket: string): () => void {
  install();
  const w: Watched = { port: Number(new URL(url).port), socket, failures: [] };
  watched.push(w);
  return () => {
    watched.splice(watched.indexOf(w), 1);
    if (w.failures.length)
      throw new Error(
        `answers that do not match the OpenAPI document (src/daemon/openapi.ts, responses.ts):\n${w.failures.slice(0, 20).join('\n')}${w.failures.length > 20 ? `\n… and ${w.failures.length - 20} more` : ''}`,
      );
  };
}
