/**
 * The OpenAPI 3.1 document served at /v1/openapi.json. Request bodies are generated from the
 * same zod schemas that validate them; a test checks every route the app serves is listed here.
 */
import { z } from 'zod';
import { createSandboxSchema, execSchema, processInputSchema, runSchema, signalSchema, startProcessSchema, updateSandboxSchema } from '../engine/schemas.js';
import { ERROR_STATUS } from '../util/errors.js';
import { buildImageSchema } from '../images/build/recipe.js';
import { VERSION } from '../version.js';
import { pullSchema } from './routes/images.js';

type Op = { summary: string; body?: z.ZodType; stream?: boolean; ok?: number; params?: string[]; query?: string[] };

const json = (schema: z.ZodType): unknown => {
  const s = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
};

/** Every route: path (OpenAPI style) → method → what it does. */
export const ROUTES: Record<string, Record<string, Op>> = {
  '/v1/health': { get: { summary: 'Liveness: {status: "ok"}' } },
  '/v1/node': { get: { summary: 'This node: version, platform, drivers and what the host can do' } },
  '/v1/languages': { get: { summary: 'Languages for one-shot runs, with versions and aliases' } },
  '/v1/openapi.json': { get: { summary: 'This document' } },
  '/v1/images/built': { get: { summary: 'Images of the store built from recipes (their config labels org.realm.recipe, org.realm.base, org.realm.packages): name, hash, from, packages, bytes, createdAt, digest' } },
  '/v1/images/build': { post: { summary: 'Build an image from Debian packages (or the recipe file named like it), cached by recipe; SSE: progress events {phase, message, percent}, then done with {name, hash, cache, bytes, digest, rootfs, ms} or error; the image lands in the store as NAME (NAME:latest)', body: buildImageSchema, stream: true } },
  '/v1/runs': { post: { summary: 'One-shot run: language + code → output and a verdict', body: runSchema } },
  '/v1/runs/stream': { post: { summary: 'One-shot run with output as SSE (stdout, stderr, exit, error events)', body: runSchema, stream: true } },
  '/v1/sandboxes': {
    get: { summary: 'List sandboxes (filter with label=k=v, status=)', query: ['label', 'status'] },
    post: { summary: 'Create and start a sandbox', body: createSandboxSchema, ok: 201 },
  },
  '/v1/sandboxes/{id}': {
    get: { summary: 'One sandbox, by id or name', params: ['id'] },
    delete: { summary: 'Destroy a sandbox (its volumes stay)', params: ['id'], ok: 204 },
    patch: { summary: 'Set a new TTL (from now; 0 for none) or labels', body: updateSandboxSchema, params: ['id'] },
  },
  '/v1/sandboxes/{id}/network': { get: { summary: 'Network policy of a sandbox and the connections its proxy denied (time, host, port, reason)', params: ['id'] } },
  '/v1/sandboxes/{id}/signal': { post: { summary: 'Signal every process of the sandbox (not its init)', body: signalSchema, params: ['id'], ok: 204 } },
  '/v1/sandboxes/{id}/exec': { post: { summary: 'Run a command to completion', body: execSchema, params: ['id'] } },
  '/v1/sandboxes/{id}/exec/stream': { post: { summary: 'Run a command with output as SSE', body: execSchema, params: ['id'], stream: true } },
  '/v1/sandboxes/{id}/exec/ws': { get: { summary: 'Interactive exec over WebSocket (a pseudo-terminal by default): first message {type:"start", command, tty?, rows?, cols?}, then stdin/eof/resize/signal messages; output and an exit message come back', params: ['id'] } },
  '/v1/sandboxes/{id}/stop': { post: { summary: 'Stop a sandbox (files stay)', params: ['id'] } },
  '/v1/sandboxes/{id}/start': { post: { summary: 'Start a stopped sandbox', params: ['id'] } },
  '/v1/sandboxes/{id}/files': {
    get: { summary: 'Read a file (raw bytes); path= absolute or relative to /home/user', params: ['id'], query: ['path'] },
    put: { summary: 'Write a file from the raw body; path=, mode= (octal), parents=1', params: ['id'], query: ['path', 'mode', 'parents'], ok: 204 },
  },
  '/v1/sandboxes/{id}/files/list': { get: { summary: 'List a directory: name, path, type, size, mode, mtime, target', params: ['id'], query: ['path'] } },
  '/v1/sandboxes/{id}/files/stat': { get: { summary: 'One entry (links are not followed)', params: ['id'], query: ['path'] } },
  '/v1/sandboxes/{id}/files/mkdir': { post: { summary: 'Make a directory: {path, parents?}', params: ['id'], ok: 204 } },
  '/v1/sandboxes/{id}/files/remove': { post: { summary: 'Remove: {path, recursive?} (links are removed, never followed)', params: ['id'], ok: 204 } },
  '/v1/sandboxes/{id}/files/move': { post: { summary: 'Move or rename: {from, to}', params: ['id'], ok: 204 } },
  '/v1/sandboxes/{id}/files/tar': {
    get: { summary: 'Download path as a tar (a directory under its own name)', params: ['id'], query: ['path'] },
    put: { summary: 'Upload a tar into the directory path= (made if missing); entries with .., absolute paths or links out are refused and nothing is written', params: ['id'], query: ['path'], ok: 204 },
  },
  '/v1/sandboxes/{id}/processes': {
    get: { summary: 'Background processes of a sandbox', params: ['id'] },
    post: { summary: 'Start a command in the background (output kept for reconnects)', body: startProcessSchema, params: ['id'], ok: 201 },
  },
  '/v1/sandboxes/{id}/processes/{pid}': {
    get: { summary: 'One background process', params: ['id', 'pid'] },
    delete: { summary: 'Kill a background process and everything it started', params: ['id', 'pid'], ok: 204 },
  },
  '/v1/sandboxes/{id}/processes/{pid}/output': { get: { summary: 'Its output as SSE: what was kept (last 1 MiB per stream), then live, then exit; follow=0 stops after what was kept (event end)', params: ['id', 'pid'], query: ['follow'], stream: true } },
  '/v1/sandboxes/{id}/processes/{pid}/attach': { get: { summary: 'WebSocket: attach a terminal to a background process (replay, then live; stdin, resize, signal); closing detaches', params: ['id', 'pid'] } },
  '/v1/sandboxes/{id}/processes/{pid}/stdin': { post: { summary: 'Write to its stdin: {data, close?}', body: processInputSchema, params: ['id', 'pid'], ok: 204 } },
  '/v1/sandboxes/{id}/processes/{pid}/signal': { post: { summary: 'Signal it: {signal}', body: signalSchema, params: ['id', 'pid'], ok: 204 } },
  '/v1/workspaces': {
    get: { summary: 'Workspaces: name, project, clone path, sandbox' },
    post: { summary: 'Open a workspace: resume it, or clone {repo} (a path in a git repository on this host) into a new one; {name, repo, image?, driver?, network?, allow?, env?, gitconfig?}', ok: 201 },
  },
  '/v1/workspaces/{name}/ssh-agent': { get: { summary: 'WebSocket: forward the client\'s SSH agent into the workspace (SSH_AUTH_SOCK=/.realm/share/ssh-agent.sock) while connected; binary frames are a 4-byte channel number then bytes, text frames open/close channels', params: ['name'] } },
  '/v1/workspaces/{name}': {
    get: { summary: 'One workspace', params: ['name'] },
    delete: { summary: 'Remove the workspace: its sandbox, its clone and its record (never the original repository)', params: ['name'], ok: 204 },
  },
  '/v1/volumes': { get: { summary: 'List volumes' } },
  '/v1/tokens': {
    get: { summary: 'List API tokens (never their secrets)' },
    post: { summary: 'Create an API token; the answer is the only time its secret is shown', ok: 201 },
  },
  '/v1/tokens/{id}': { delete: { summary: 'Revoke an API token', params: ['id'], ok: 204 } },
  '/mcp': {
    get: { summary: 'MCP (streamable HTTP, stateless): tools run_code, create_sandbox, exec, read_file, write_file, list_files, destroy_sandbox' },
    post: { summary: 'MCP JSON-RPC messages' },
    delete: { summary: 'MCP session end (stateless: nothing to end)' },
  },
  '/api/v2/runtimes': { get: { summary: 'Piston v2: runtimes (language, version, aliases)' } },
  '/api/v2/execute': { post: { summary: "Piston v2: execute, with Piston's request and response shapes; errors are {message}" } },
  '/api/repl/languages': { get: { summary: 'REPL API: language names' } },
  '/api/repl/execute': { post: { summary: 'REPL API: {language, code} → {result, success}' } },
  '/api/repl/execute/stream': { post: { summary: 'REPL API: output as SSE data messages, then event: done', stream: true } },
  '/v1/images': { get: { summary: 'Images: names, digest, size (compressed blobs), unpacked size, layers, created' } },
  '/v1/images/{ref}': {
    get: { summary: 'One image (NAME[:TAG] or sha256:…, URL-encoded): manifest, config, where it is unpacked', params: ['ref'] },
    delete: { summary: 'Remove an image name (IMAGE_IN_USE while a sandbox, live or stopped, uses it); the unpacked root goes with its last name, blobs at prune', params: ['ref'] },
  },
  '/v1/images/{ref}/export': { get: { summary: 'Download the image as an OCI archive (tar); `POST /v1/images/import` reads it back', params: ['ref'] } },
  '/v1/images/import': { post: { summary: 'Import an OCI archive or a docker save tarball (plain or gzip\'d) from the raw body, streamed to disk; name= names it (required when the archive names none)', query: ['name'], ok: 201 } },
  '/v1/images/pull': { post: { summary: 'Pull REGISTRY/NAME:TAG (OCI distribution, token or basic auth, every blob verified); progress, then done or error, as SSE', body: pullSchema, stream: true } },
  '/v1/images/prune': { post: { summary: 'Remove blobs and unpacked roots no image name or sandbox uses: {blobs, unpacked, bytes}' } },
  '/v1/volumes/{name}': {
    get: { summary: 'One volume', params: ['name'] },
    delete: { summary: 'Remove a volume (refused while mounted)', params: ['name'], ok: 204 },
  },
};

let cached: unknown;

export function openapiDocument(): unknown {
  if (cached) return cached;
  const errorRef = { $ref: '#/components/schemas/Error' };
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, ops] of Object.entries(ROUTES)) {
    paths[path] = {};
    for (const [method, op] of Object.entries(ops)) {
      const ok = op.ok ?? 200;
      paths[path][method] = {
        summary: op.summary,
        parameters: [
          ...(op.params ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
          ...(op.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
        ],
        ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(op.body) } } } } : {}),
        responses: {
          [ok]: ok === 204 ? { description: 'Done' } : { description: 'OK', content: { [op.stream ? 'text/event-stream' : 'application/json']: {} } },
          '4XX': { description: 'Bad request, not found, conflict or over a limit', content: { 'application/json': { schema: errorRef } } },
          '5XX': { description: 'The sandbox could not start, or an internal error', content: { 'application/json': { schema: errorRef } } },
        },
      };
    }
  }
  cached = {
    openapi: '3.1.0',
    info: { title: 'realm API', version: VERSION, description: 'Run untrusted code behind real isolation. Errors are {error: {code, message}}; codes are listed in components.schemas.Error. Over TCP every route but /v1/health wants "Authorization: Bearer <token>" (a token acts as the user who made it), unless the operator opened its group with --anonymous (runs: /v1/runs, /v1/languages, the Piston and REPL routes). On the daemon\'s unix socket the caller is its uid (SO_PEERCRED) and sends no token. Users other than root see only their own sandboxes, workspaces, volumes and tokens (others\' answer 404); image changes and other node-wide routes are root\'s (403).' },
    paths,
    components: {
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: {
            error: {
              type: 'object',
              required: ['code', 'message'],
              properties: { code: { type: 'string', enum: Object.keys(ERROR_STATUS) }, message: { type: 'string' } },
            },
          },
        },
      },
    },
  };
  return cached;
}
