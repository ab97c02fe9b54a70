/**
 * The OpenAPI 3.1 document served at /v1/openapi.json. Request bodies are generated from the
 * same zod schemas that validate them, responses from the schemas in responses.ts; a test checks
 * every route the app serves is listed here, and the e2e suite checks every answer against it.
 */
import { z } from 'zod';
import {
  createSandboxSchema,
  execSchema,
  processInputSchema,
  runSchema,
  signalSchema,
  startProcessSchema,
  updateSandboxSchema,
} from '../engine/schemas.js';
import { buildImageSchema } from '../images/build/recipe.js';
import { DEFAULT_LISTEN } from '../config.js';
import { VERSION } from '../version.js';
import { pullSchema } from './routes/images.js';
import { mkdirSchema, moveSchema, removeSchema } from './routes/files.js';
import { openWorkspaceSchema } from './routes/workspaces.js';
import { createTokenSchema } from './routes/tokens.js';
import { executeSchema } from './routes/piston.js';
import { replSchema } from './routes/repl.js';
import { pushAppSchema } from '../gateway/apps.js';
import { blobGcSchema } from './routes/blobs.js';
import { RESPONSE_SCHEMAS, type ResponseName } from './responses.js';
import { JOB_ROUTES } from './openapi-jobs.js';
import { NODE_ROUTES } from './openapi-nodes.js';
import { METRICS_ROUTES } from './openapi-metrics.js';
import { SERVICE_ROUTES } from './openapi-services.js';
import { MANIFEST_ROUTES } from './openapi-manifest.js';
import { UPGRADE_ROUTES } from './openapi-upgrades.js';
import { PREVIEW_ROUTES } from './openapi-preview.js';
import { OBSERVE_ROUTES } from './openapi-observe.js';
import { LOG_ROUTES } from './openapi-logs.js';
import { UI_ROUTES } from './openapi-ui.js';

/**
 * What a success answers: a JSON body of a named schema (responses.ts), Server-Sent Events, a
 * tar, raw bytes, either of those two (`bytesOrTar`: a file as it is, a directory as a tar), a
 * WebSocket upgrade, or nothing (`empty`; 204s have no body either).
 */
type Answer = ResponseName | 'sse' | 'tar' | 'bytes' | 'bytesOrTar' | 'text' | 'ws' | 'empty';

export interface Op {
  /** Stable camelCase name (operationId): SDK generators name their methods by it. */
  id: string;
  summary: string;
  /** A JSON request body, validated by this schema. */
  body?: z.ZodType;
  /** A raw request body of this media type. */
  raw?: 'application/octet-stream' | 'application/x-tar';
  /** The success status (200 unless given). */
  ok?: number;
  /** What the success answers; nothing when left out (204). */
  res?: Answer;
  /** Other success statuses. */
  also?: Record<number, { description: string; res?: Answer }>;
  /** Shapes of 4xx/5xx bodies: realm's Error unless given (compatibility routes answer in their own shapes). */
  errors?: ResponseName[];
  params?: string[];
  query?: string[];
  /** Answered without a token. */
  open?: boolean;
}

/** Media type of each kind of answer. */
export const MEDIA: Record<Exclude<Answer, ResponseName | 'ws' | 'empty' | 'bytesOrTar'>, string> = {
  sse: 'text/event-stream',
  tar: 'application/x-tar',
  bytes: 'application/octet-stream',
  text: 'text/plain',
};

const json = (schema: z.ZodType, io: 'input' | 'output' = 'input'): Record<string, unknown> => {
  const s = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
};

/** Every route: path (OpenAPI style) → method → what it does. */
export const ROUTES: Record<string, Record<string, Op>> = {
  '/v1/health': { get: { id: 'getHealth', res: 'Health', open: true, summary: 'Liveness: {status: "ok"}' } },
  '/v1/node': { get: { id: 'getNode', res: 'Node', summary: 'This node: version, platform, drivers and what the host can do' } },
  '/v1/languages': {
    get: { id: 'listLanguages', res: 'Languages', summary: 'Languages for one-shot runs, with versions and aliases' },
  },
  '/v1/openapi.json': { get: { id: 'getOpenApiDocument', res: 'OpenApiDocument', summary: 'This document' } },
  '/v1/images/built': {
    get: {
      id: 'listBuiltImages',
      res: 'BuiltImages',
      summary:
        'Images of the store built from recipes (their config labels org.realm.recipe, org.realm.base, org.realm.packages): name, hash, from, packages, bytes, createdAt, digest',
    },
  },
  '/v1/images/build': {
    post: {
      id: 'buildImage',
      res: 'sse',
      summary:
        'Build an image from Debian packages (or the recipe file named like it), cached by recipe; SSE: progress events {phase, message, percent}, then done with {name, hash, cache, bytes, digest, rootfs, ms} or error; the image lands in the store as NAME (NAME:latest)',
      body: buildImageSchema,
    },
  },
  '/v1/runs': {
    post: { id: 'createRun', res: 'RunResult', summary: 'One-shot run: language + code → output and a verdict', body: runSchema },
  },
  '/v1/runs/stream': {
    post: {
      id: 'streamRun',
      res: 'sse',
      summary: 'One-shot run with output as SSE (stdout, stderr, exit, error events)',
      body: runSchema,
    },
  },
  '/v1/sandboxes': {
    get: {
      id: 'listSandboxes',
      res: 'SandboxList',
      summary: 'List sandboxes (filter with label=k=v, status=)',
      query: ['label', 'status'],
    },
    post: {
      id: 'createSandbox',
      res: 'Sandbox',
      summary:
        'Create and start a sandbox; in a cluster, an image of the store that the node it lands on lacks is first brought from a node that has it (verified, kept there under its name)',
      body: createSandboxSchema,
      ok: 201,
    },
  },
  '/v1/sandboxes/{id}': {
    get: { id: 'getSandbox', res: 'Sandbox', summary: 'One sandbox, by id or name', params: ['id'] },
    delete: { id: 'destroySandbox', summary: 'Destroy a sandbox (its volumes stay)', params: ['id'], ok: 204 },
    patch: {
      id: 'updateSandbox',
      res: 'Sandbox',
      summary: 'Set a new TTL (from now; 0 for none) or labels',
      body: updateSandboxSchema,
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/network': {
    get: {
      id: 'getSandboxNetwork',
      res: 'Network',
      summary: 'Network policy of a sandbox and the connections its proxy denied (time, host, port, reason)',
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/signal': {
    post: {
      id: 'signalSandbox',
      summary: 'Signal every process of the sandbox (not its init)',
      body: signalSchema,
      params: ['id'],
      ok: 204,
    },
  },
  '/v1/sandboxes/{id}/exec': {
    post: { id: 'execInSandbox', res: 'ExecResult', summary: 'Run a command to completion', body: execSchema, params: ['id'] },
  },
  '/v1/sandboxes/{id}/exec/stream': {
    post: {
      id: 'streamExecInSandbox',
      res: 'sse',
      summary: 'Run a command with output as SSE',
      body: execSchema,
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/exec/ws': {
    get: {
      id: 'execInteractive',
      res: 'ws',
      summary:
        'Interactive exec over WebSocket (a pseudo-terminal by default): first message {type:"start", command, tty?, rows?, cols?}, then stdin/eof/resize/signal messages; output and an exit message come back',
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/stop': {
    post: { id: 'stopSandbox', res: 'Sandbox', summary: 'Stop a sandbox (files stay)', params: ['id'] },
  },
  '/v1/sandboxes/{id}/start': {
    post: { id: 'startSandbox', res: 'Sandbox', summary: 'Start a stopped sandbox', params: ['id'] },
  },
  '/v1/sandboxes/{id}/files': {
    get: {
      id: 'readFile',
      res: 'bytes',
      summary: 'Read a file (raw bytes); path= absolute or relative to /home/user',
      params: ['id'],
      query: ['path'],
    },
    put: {
      id: 'writeFile',
      raw: 'application/octet-stream',
      summary: 'Write a file from the raw body; path=, mode= (octal), parents=1',
      params: ['id'],
      query: ['path', 'mode', 'parents'],
      ok: 204,
    },
  },
  '/v1/sandboxes/{id}/files/list': {
    get: {
      id: 'listFiles',
      res: 'FileList',
      summary: 'List a directory: name, path, type, size, mode, mtime, target',
      params: ['id'],
      query: ['path'],
    },
  },
  '/v1/sandboxes/{id}/files/stat': {
    get: { id: 'statFile', res: 'FileInfo', summary: 'One entry (links are not followed)', params: ['id'], query: ['path'] },
  },
  '/v1/sandboxes/{id}/files/mkdir': {
    post: { id: 'makeDirectory', body: mkdirSchema, summary: 'Make a directory: {path, parents?}', params: ['id'], ok: 204 },
  },
  '/v1/sandboxes/{id}/files/remove': {
    post: {
      id: 'removeFile',
      body: removeSchema,
      summary: 'Remove: {path, recursive?} (links are removed, never followed)',
      params: ['id'],
      ok: 204,
    },
  },
  '/v1/sandboxes/{id}/files/move': {
    post: { id: 'moveFile', body: moveSchema, summary: 'Move or rename: {from, to}', params: ['id'], ok: 204 },
  },
  '/v1/sandboxes/{id}/files/tar': {
    get: {
      id: 'downloadTar',
      res: 'tar',
      summary: 'Download path as a tar (a directory under its own name)',
      params: ['id'],
      query: ['path'],
    },
    put: {
      id: 'uploadTar',
      raw: 'application/x-tar',
      summary:
        'Upload a tar into the directory path= (made if missing); entries with .., absolute paths or links out are refused and nothing is written',
      params: ['id'],
      query: ['path'],
      ok: 204,
    },
  },
  '/v1/sandboxes/{id}/processes': {
    get: { id: 'listProcesses', res: 'ProcessList', summary: 'Background processes of a sandbox', params: ['id'] },
    post: {
      id: 'startProcess',
      res: 'Process',
      summary: 'Start a command in the background (output kept for reconnects)',
      body: startProcessSchema,
      params: ['id'],
      ok: 201,
    },
  },
  '/v1/sandboxes/{id}/processes/{pid}': {
    get: { id: 'getProcess', res: 'Process', summary: 'One background process', params: ['id', 'pid'] },
    delete: { id: 'killProcess', summary: 'Kill a background process and everything it started', params: ['id', 'pid'], ok: 204 },
  },
  '/v1/sandboxes/{id}/processes/{pid}/output': {
    get: {
      id: 'streamProcessOutput',
      res: 'sse',
      summary:
        'Its output as SSE: what was kept (last 1 MiB per stream), then live, then exit; follow=0 stops after what was kept (event end)',
      params: ['id', 'pid'],
      query: ['follow'],
    },
  },
  '/v1/sandboxes/{id}/processes/{pid}/attach': {
    get: {
      id: 'attachProcess',
      res: 'ws',
      summary:
        'WebSocket: attach a terminal to a background process (replay, then live; stdin, resize, signal); closing detaches',
      params: ['id', 'pid'],
    },
  },
  '/v1/sandboxes/{id}/processes/{pid}/stdin': {
    post: {
      id: 'writeProcessStdin',
      summary: 'Write to its stdin: {data, close?}',
      body: processInputSchema,
      params: ['id', 'pid'],
      ok: 204,
    },
  },
  '/v1/sandboxes/{id}/processes/{pid}/signal': {
    post: { id: 'signalProcess', summary: 'Signal it: {signal}', body: signalSchema, params: ['id', 'pid'], ok: 204 },
  },
  '/v1/workspaces': {
    get: {
      id: 'listWorkspaces',
      res: 'WorkspaceList',
      summary: "Workspaces: name, project, clone path, sandbox; in a cluster every node's, each naming its node",
    },
    post: {
      id: 'openWorkspace',
      body: openWorkspaceSchema,
      res: 'WorkspaceOpened',
      also: { 200: { description: 'The workspace existed: resumed', res: 'WorkspaceOpened' } },
      summary:
        'Open a workspace: resume it where it lives, or clone {repo} (a path in a git repository on the host of the node that makes it) into a new one, on a node that fits {placement} in a cluster (names are cluster-wide); {name, repo, placement?, image?, driver?, network?, allow?, env?, gitconfig?}',
      ok: 201,
    },
  },
  '/v1/workspaces/{name}/ssh-agent': {
    get: {
      id: 'forwardSshAgent',
      res: 'ws',
      summary:
        "WebSocket: forward the client's SSH agent into the workspace (SSH_AUTH_SOCK=/.realm/share/ssh-agent.sock) while connected; binary frames are a 4-byte channel number then bytes, text frames open/close channels",
      params: ['name'],
    },
  },
  '/v1/workspaces/{name}': {
    get: { id: 'getWorkspace', res: 'Workspace', summary: 'One workspace', params: ['name'] },
    delete: {
      id: 'deleteWorkspace',
      summary: 'Remove the workspace: its sandbox, its clone and its record (never the original repository)',
      params: ['name'],
      ok: 204,
    },
  },
  '/v1/apps': {
    get: { id: 'listApps', res: 'AppList', summary: "List the caller's apps on this node's gateway" },
    post: {
      id: 'pushApp',
      body: pushAppSchema,
      res: 'App',
      ok: 201,
      summary:
        'Deploy a wasi:http/incoming-handler component or a WASI preview 1 CGI module (base64) as app NAME, served at the gateway (/NAME/…) with its limits per request; replaces your own app of that name',
    },
  },
  '/v1/apps/{name}': {
    get: { id: 'getApp', res: 'App', summary: 'One app', params: ['name'] },
    delete: { id: 'removeApp', summary: 'Remove an app from the gateway', params: ['name'], ok: 204 },
  },
  '/v1/volumes': { get: { id: 'listVolumes', res: 'VolumeList', summary: 'List volumes' } },
  '/v1/tokens': {
    get: { id: 'listTokens', res: 'TokenList', summary: 'List API tokens (never their secrets)' },
    post: {
      id: 'createToken',
      body: createTokenSchema,
      res: 'TokenCreated',
      summary: 'Create an API token; the answer is the only time its secret is shown',
      ok: 201,
    },
  },
  '/v1/tokens/{id}': { delete: { id: 'revokeToken', summary: 'Revoke an API token', params: ['id'], ok: 204 } },
  '/mcp': {
    get: {
      id: 'mcpStream',
      res: 'sse',
      errors: ['JsonRpcMessage', 'Error'],
      summary:
        'MCP (streamable HTTP, stateless): tools run_code, create_sandbox, exec, read_file, write_file, list_files, destroy_sandbox',
    },
    post: {
      id: 'mcpMessage',
      res: 'JsonRpcReply',
      also: { 202: { description: 'Accepted (notifications and responses): no body' } },
      errors: ['JsonRpcMessage', 'Error'],
      summary: 'MCP JSON-RPC messages',
    },
    delete: {
      id: 'mcpEndSession',
      res: 'empty',
      errors: ['JsonRpcMessage', 'Error'],
      summary: 'MCP session end (stateless: nothing to end)',
    },
  },
  '/api/v2/runtimes': {
    get: { id: 'pistonRuntimes', res: 'PistonRuntimes', summary: 'Piston v2: runtimes (language, version, aliases)' },
  },
  '/api/v2/execute': {
    post: {
      id: 'pistonExecute',
      body: executeSchema,
      res: 'PistonExecuteResult',
      errors: ['PistonError', 'Error'],
      summary: "Piston v2: execute, with Piston's request and response shapes; errors are {message}",
    },
  },
  '/api/repl/languages': { get: { id: 'replLanguages', res: 'ReplLanguages', summary: 'REPL API: language names' } },
  '/api/repl/execute': {
    post: { id: 'replExecute', body: replSchema, res: 'ReplResult', summary: 'REPL API: {language, code} → {result, success}' },
  },
  '/api/repl/execute/stream': {
    post: {
      id: 'replExecuteStream',
      body: replSchema,
      res: 'sse',
      summary: 'REPL API: output as SSE data messages, then event: done',
    },
  },
  '/v1/images': {
    get: {
      id: 'listImages',
      res: 'ImageList',
      summary: 'Images: names, digest, size (compressed blobs), unpacked size, layers, created',
    },
  },
  '/v1/images/{ref}': {
    get: {
      id: 'getImage',
      res: 'ImageDetail',
      summary: 'One image (NAME[:TAG] or sha256:…, URL-encoded): manifest, config, where it is unpacked',
      params: ['ref'],
    },
    delete: {
      id: 'removeImage',
      res: 'ImageRemoved',
      summary:
        'Remove an image name (IMAGE_IN_USE while a sandbox, live or stopped, uses it); the unpacked root goes with its last name, blobs at prune',
      params: ['ref'],
    },
  },
  '/v1/images/{ref}/export': {
    get: {
      id: 'exportImage',
      res: 'tar',
      summary: 'Download the image as an OCI archive (tar); `POST /v1/images/import` reads it back',
      params: ['ref'],
    },
  },
  '/v1/images/import': {
    post: {
      id: 'importImage',
      raw: 'application/octet-stream',
      res: 'ImagesImported',
      summary:
        "Import an OCI archive or a docker save tarball (plain or gzip'd) from the raw body, streamed to disk; name= names it (required when the archive names none)",
      query: ['name'],
      ok: 201,
    },
  },
  '/v1/images/pull': {
    post: {
      id: 'pullImage',
      res: 'sse',
      summary:
        'Pull REGISTRY/NAME:TAG (OCI distribution, token or basic auth, every blob verified); progress, then done or error, as SSE',
      body: pullSchema,
    },
  },
  '/v1/images/prune': {
    post: {
      id: 'pruneImages',
      res: 'ImagePruned',
      summary: 'Remove blobs and unpacked roots no image name or sandbox uses: {blobs, unpacked, bytes}',
    },
  },
  '/v1/blobs': {
    get: {
      id: 'listBlobs',
      res: 'BlobList',
      summary:
        'Blobs you uploaded, pinned or reference (root: all) on this node: digest, size, pinned, refs, expiresAt, corrupt; in a cluster each node lists its own store (a blob fetched from another node is listed here, unpinned, until GC takes it)',
    },
    post: {
      id: 'putBlob',
      raw: 'application/octet-stream',
      res: 'Blob',
      ok: 201,
      summary:
        'Upload a blob in one request, streamed to disk (no size limit but the disk); digest= is checked when given; pin=0 leaves it unpinned (collected after the grace period unless referenced)',
      query: ['digest', 'pin'],
    },
  },
  '/v1/blobs/uploads': {
    post: {
      id: 'createBlobUpload',
      res: 'BlobUpload',
      ok: 201,
      summary:
        'Open a resumable upload session (Location, Upload-Offset: 0); PATCH chunks, then PUT ?digest= to commit; an idle session expires with its bytes',
    },
  },
  '/v1/blobs/uploads/{id}': {
    get: {
      id: 'getBlobUpload',
      res: 'BlobUpload',
      summary: 'Where an upload stands: the offset the next chunk starts at',
      params: ['id'],
    },
    patch: {
      id: 'appendBlobUpload',
      raw: 'application/octet-stream',
      res: 'BlobUpload',
      summary:
        "Append a chunk at Upload-Offset (header; must be the session's offset, else BLOB_UPLOAD_OFFSET); an optional Content-Digest (sha-256) is checked; a chunk that fails is not kept",
      params: ['id'],
    },
    put: {
      id: 'commitBlobUpload',
      raw: 'application/octet-stream',
      res: 'Blob',
      ok: 201,
      summary:
        'Commit with digest=sha256:… (the last chunk may come in the body, with Upload-Offset); a mismatch is BLOB_DIGEST_MISMATCH and nothing is stored; pin=0 leaves it unpinned',
      params: ['id'],
      query: ['digest', 'pin'],
    },
    delete: { id: 'cancelBlobUpload', summary: 'Cancel an upload: its bytes go', params: ['id'], ok: 204 },
  },
  '/v1/blobs/gc': {
    post: {
      id: 'collectBlobs',
      body: blobGcSchema,
      res: 'BlobGc',
      summary:
        'Collect now (root): blobs unpinned and unreferenced past the grace period (or {grace}), expired uploads, stray files',
    },
  },
  '/v1/blobs/{digest}': {
    get: {
      id: 'getBlob',
      res: 'bytes',
      also: { 206: { description: 'Partial content: the single Range asked for', res: 'bytes' } },
      summary:
        'Download a blob, verified as it is read (a corrupt one ends short and is quarantined: BLOB_CORRUPT after); Range: bytes=A-B for one range; HEAD for its size and Repr-Digest. In a cluster, a blob this node does not hold for you is fetched first from a node that does (asked as you, so its owner checks apply), verified against the digest, and kept here unpinned (GC takes it after the grace period); HEAD only asks. No node has it for you: BLOB_NOT_FOUND; only wrong bytes came: BLOB_CORRUPT, nothing kept',
      params: ['digest'],
    },
    delete: {
      id: 'removeBlob',
      summary:
        'Drop your hold (root: every hold); the bytes go when nothing else holds or references them; BLOB_IN_USE while you reference it',
      params: ['digest'],
      ok: 204,
    },
  },
  '/v1/blobs/{digest}/pin': {
    put: { id: 'pinBlob', res: 'Blob', summary: 'Pin a blob you may read: GC never takes it while pinned', params: ['digest'] },
    delete: {
      id: 'unpinBlob',
      res: 'Blob',
      summary: 'Unpin: GC takes it after the grace period unless pinned or referenced again',
      params: ['digest'],
    },
  },
  '/v1/volumes/{name}': {
    get: { id: 'getVolume', res: 'Volume', summary: 'One volume', params: ['name'] },
    delete: { id: 'removeVolume', summary: 'Remove a volume (refused while mounted)', params: ['name'], ok: 204 },
  },
  ...JOB_ROUTES,
  ...NODE_ROUTES,
  ...METRICS_ROUTES,
  ...SERVICE_ROUTES,
  ...MANIFEST_ROUTES,
  ...UPGRADE_ROUTES,
  ...PREVIEW_ROUTES,
  ...OBSERVE_ROUTES,
  ...LOG_ROUTES,
  ...UI_ROUTES,
};

const ref = (name: ResponseName) => ({ $ref: `#/components/schemas/${name}` });

function answer(res: Answer | undefined, description: string): Record<string, unknown> {
  if (res === undefined || res === 'empty') return { description };
  if (res === 'ws') return { description: `${description}: the connection is upgraded to a WebSocket (JSON text frames)` };
  if (res === 'bytesOrTar')
    return {
      description,
      content: Object.fromEntries([MEDIA.bytes, MEDIA.tar].map((m) => [m, { schema: { type: 'string', contentMediaType: m } }])),
    };
  if (res === 'sse' || res === 'tar' || res === 'bytes' || res === 'text')
    return {
      description,
      content: {
        [MEDIA[res]]: {
          schema:
            res === 'sse'
              ? { type: 'string', description: 'Server-Sent Events' }
              : { type: 'string', contentMediaType: MEDIA[res] },
        },
      },
    };
  return { description, content: { 'application/json': { schema: ref(res) } } };
}

function errorAnswer(description: string, shapes: ResponseName[]): Record<string, unknown> {
  const schema = shapes.length === 1 ? ref(shapes[0]) : { anyOf: shapes.map(ref) };
  return { description, content: { 'application/json': { schema } } };
}

let cached: unknown;

export function openapiDocument(): unknown {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [path, ops] of Object.entries(ROUTES)) {
    paths[path] = {};
    for (const [method, op] of Object.entries(ops)) {
      const ok = op.ok ?? (op.res === 'ws' ? 101 : op.res ? 200 : 204);
      const errors = op.errors ?? ['Error'];
      const requestBody = op.body
        ? { required: !op.body.safeParse({}).success, content: { 'application/json': { schema: json(op.body) } } }
        : op.raw
          ? { required: true, content: { [op.raw]: { schema: { type: 'string', contentMediaType: op.raw } } } }
          : undefined;
      paths[path][method] = {
        operationId: op.id,
        summary: op.summary,
        ...(op.open ? { security: [] } : {}),
        parameters: [
          ...(op.params ?? []).map((name) => ({ name, in: 'path', required: true, schema: { type: 'string' } })),
          ...(op.query ?? []).map((name) => ({ name, in: 'query', required: false, schema: { type: 'string' } })),
        ],
        ...(requestBody ? { requestBody } : {}),
        responses: {
          [ok]: answer(op.res, ok === 204 ? 'Done: no body' : ok === 201 ? 'Created' : ok === 101 ? 'Switching protocols' : 'OK'),
          ...Object.fromEntries(Object.entries(op.also ?? {}).map(([status, a]) => [status, answer(a.res, a.description)])),
          '4XX': errorAnswer('Bad request, unauthorized, forbidden, not found, conflict or over a limit', errors),
          '5XX': errorAnswer('The sandbox could not start, or an internal error', errors),
        },
      };
    }
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'realm API',
      version: VERSION,
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      description:
        "Run untrusted code behind real isolation. Errors are {error: {code, message}}; codes are listed in components.schemas.Error. Over TCP every route but /v1/health wants \"Authorization: Bearer <token>\" (a token acts as the user who made it), unless the operator opened its group with --anonymous (runs: /v1/runs, /v1/languages, the Piston and REPL routes). On the daemon's unix socket the caller is its uid (SO_PEERCRED) and sends no token. Users other than root see only their own sandboxes, workspaces, volumes, tokens and blobs (others' answer 404); image changes and other node-wide routes are root's (403).",
    },
    servers: [
      {
        url: 'http://{address}',
        description: 'The daemon (realm serve --listen; loopback by default)',
        variables: { address: { default: DEFAULT_LISTEN, description: 'HOST:PORT the daemon listens on' } },
      },
    ],
    security: [{ bearer: [] }],
    paths,
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API token (the admin token in the data dir, or one made with POST /v1/tokens)',
        },
      },
      schemas: Object.fromEntries(Object.entries(RESPONSE_SCHEMAS).map(([name, schema]) => [name, json(schema, 'output')])),
    },
  };
  return cached;
}
