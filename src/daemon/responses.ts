/**
 * What the API answers, as zod schemas: the OpenAPI document describes each route's responses
 * with them (openapi.ts), the views are typed by them (views.ts), and the e2e suite checks every
 * real answer against the document (test/helpers/response-check.ts). Objects are closed: a field
 * an answer gains must be added here (the e2e suite fails on an undocumented one).
 */
import { jobArtifactListResponse, jobCancelResponse, jobListResponse, jobResponse, jobRunResponse } from './responses-jobs.js';
import { clusterInviteResponse, clusterNodeResponse, nodeListResponse } from './responses-nodes.js';
import { metricsHistoryResponse } from './responses-metrics.js';
import { packageDeploymentResponse, serviceHistoryResponse, serviceListResponse, serviceResponse } from './responses-services.js';
import {
  manifestAppliedResponse,
  manifestDiffResponse,
  manifestStatusResponse,
  trustListResponse,
  trustedKeyResponse,
} from './responses-manifest.js';
export { serviceHistoryResponse, serviceListResponse, serviceResponse };
import { uiSessionResponse } from './openapi-ui.js';
import { previewRevokedResponse, previewUrlListResponse, previewUrlResponse } from './openapi-preview.js';
import { sandboxStatsResponse } from './responses-observe.js';
import { logLinesResponse } from './responses-logs.js';
import { upgradeAcceptedResponse, upgradeStatusResponse } from './responses-upgrades.js';
import { z } from 'zod';
import { ERROR_STATUS } from '../util/errors.js';

const verdict = z.enum(['ok', 'runtime-error', 'compile-error', 'timeout', 'oom', 'output-limit', 'fuel-exhausted']);
const driverName = z.enum(['namespace', 'gvisor', 'microvm', 'wasm']);
const time = z.string().describe('ISO 8601 time');

export const errorResponse = z.object({
  error: z.object({
    code: z.enum(Object.keys(ERROR_STATUS) as [string, ...string[]]),
    message: z.string().describe('what went wrong and what to change'),
    details: z.record(z.string(), z.unknown()).optional().describe('more about the error, for some codes'),
  }),
});

export const healthResponse = z.object({ status: z.literal('ok') });

/** What a driver can do (DriverCapabilities): the engine refuses what it cannot before anything is made. */
export const driverCapabilities = z
  .object({
    networkModes: z.array(z.enum(['none', 'all', 'allowlist'])),
    maxVolumes: z.number().int().nullable(),
    perExecMemoryLimit: z.boolean(),
    perExecCpuLimit: z.boolean(),
    perExecPidsLimit: z.boolean(),
    tty: z.boolean(),
    interactive: z.boolean(),
    stopStart: z.boolean(),
    nativePrograms: z.boolean(),
  })
  .strict();

export const driverInfo = z.object({
  name: driverName,
  available: z.boolean(),
  reason: z.string().optional(),
  details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  /** What the driver can do (declared by each driver). */
  capabilities: driverCapabilities,
});

export const nodeResponse = z.object({
  version: z.string(),
  platform: z.string(),
  hostname: z.string(),
  dataDir: z.string(),
  sandboxes: z.number().int(),
  drivers: z.array(driverInfo),
  imageBuilds: z.object({ available: z.boolean(), reason: z.string().optional(), version: z.string().optional() }),
  anonymous: z.array(z.string()),
  warnings: z.array(z.string()),
  egress: z.object({ networkAll: z.string(), allowPrivate: z.array(z.string()) }),
  /** This node in its cluster (a lone node is a cluster of one). */
  cluster: z.object({
    id: z.string(),
    clustered: z.boolean(),
    fenced: z.boolean(),
    tags: z.array(z.string()),
    /** The node whose scheduler places jobs now (null while none leads or etcd does not answer). */
    scheduler: z.string().nullable(),
  }),
  /** Whether this daemon exports traces (realm serve --otlp-endpoint), and where (no credentials). */
  tracing: z.object({ enabled: z.boolean(), endpoint: z.string().optional() }),
});

export const languageInfo = z.object({
  name: z.string(),
  aliases: z.array(z.string()),
  image: z.string(),
  version: z.string(),
  compiled: z.boolean(),
  ready: z.boolean(),
});
export const languagesResponse = z.object({ languages: z.array(languageInfo) });

export const execResult = z.object({
  stdout: z.string(),
  stderr: z.string(),
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  verdict,
  wallMs: z.number(),
  cpuMs: z.number(),
  memoryBytes: z.number(),
});
export const runResult = execResult.extend({ language: z.string(), compile: execResult.optional() });

export const sandboxResponse = z.object({
  id: z.string(),
  name: z.string().nullable(),
  driver: driverName,
  image: z.string(),
  /** `lost`: in a cluster's list, one on a node that is down. */
  status: z.enum(['creating', 'running', 'stopped', 'destroying', 'lost']),
  limits: z.object({
    memoryBytes: z.number(),
    pids: z.number().int(),
    cpus: z.number(),
    diskBytes: z.number(),
    tmpBytes: z.number(),
  }),
  network: z.enum(['none', 'all']),
  allow: z.array(z.string()),
  deny: z.array(z.string()),
  inject: z.array(z.object({ host: z.string(), header: z.string() })),
  volumes: z.array(z.object({ volume: z.string(), path: z.string(), readOnly: z.boolean() })),
  labels: z.record(z.string(), z.string()),
  createdAt: time,
  expiresAt: time.nullable(),
  /** In a cluster (its list, and one sandbox asked for by id): the node it lives on. */
  node: z.string().optional(),
});
export const sandboxListResponse = z.object({ sandboxes: z.array(sandboxResponse) });

export const networkResponse = z.object({
  network: z.enum(['none', 'all']),
  allow: z.array(z.string()),
  deny: z.array(z.string()),
  inject: z.array(z.object({ host: z.string(), header: z.string() })),
  denied: z.array(z.object({ time, host: z.string(), port: z.number().int(), reason: z.string() })),
});

export const fileInfo = z.object({
  name: z.string(),
  path: z.string(),
  type: z.enum(['file', 'dir', 'link', 'other']),
  size: z.number(),
  mode: z.string().describe('octal permissions, e.g. "0644"'),
  mtime: time,
  target: z.string().optional().describe("a link's target"),
});
export const fileListResponse = z.object({ entries: z.array(fileInfo) });

const exitInfo = z.object({
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  oomKilled: z.boolean(),
  cpuMs: z.number(),
  memoryBytes: z.number(),
});
export const processInfo = z.object({
  id: z.string(),
  sandbox: z.string(),
  command: z.array(z.string()),
  status: z.enum(['running', 'exited']),
  startedAt: time,
  tty: z.boolean(),
  exit: exitInfo.nullable(),
});
export const processListResponse = z.object({ processes: z.array(processInfo) });

export const workspaceResponse = z.object({
  name: z.string(),
  project: z.string(),
  path: z.string(),
  lastUsedAt: time,
  sandbox: sandboxResponse,
  /** In a cluster's workspace list: the node it lives on. */
  node: z.string().optional(),
});
export const workspaceOpenResponse = workspaceResponse.extend({ created: z.boolean() });
export const workspaceListResponse = z.object({ workspaces: z.array(workspaceResponse) });

export const volumeResponse = z.object({ name: z.string(), createdAt: time, usedBy: z.array(z.string()) });
export const appResponse = z.object({
  name: z.string(),
  sha256: z.string(),
  size: z.number().int(),
  /** Each request's memory cap, bytes. */
  memory: z.number().int(),
  fuel: z.number().int().nullable(),
  timeoutMs: z.number().int(),
  visibility: z.enum(['local', 'public']),
  /** Runners serving it: how many of its requests run at once. */
  replicas: z.number().int(),
  createdAt: time,
  /** This daemon's figures for the app since it was pushed (or since the daemon started). */
  stats: z.object({
    requests: z.number().int(),
    failed: z.number().int().describe('requests answered with a gateway error (trap, deadline, fuel, memory, no response)'),
    memoryPeakBytes: z
      .number()
      .int()
      .nullable()
      .describe("the most memory one request's instance grew to, bytes; null before a request reported one"),
  }),
});
export const appListResponse = z.object({ apps: z.array(appResponse) });
export const volumeListResponse = z.object({ volumes: z.array(volumeResponse) });

export const tokenInfo = z.object({ id: z.string(), name: z.string(), createdAt: time, owner: z.string().nullable() });
export const tokenListResponse = z.object({ tokens: z.array(tokenInfo) });
export const tokenCreateResponse = z.object({
  id: z.string(),
  name: z.string(),
  token: z.string().describe('the secret, shown only here'),
  createdAt: time,
});

export const blobResponse = z.object({
  digest: z.string().describe('sha256:<hex>'),
  size: z.number().int(),
  createdAt: time,
  pinned: z.boolean().describe('you hold it pinned (root: anyone does)'),
  refs: z.number().int().describe('references you hold to it, e.g. jobs using it (root: all)'),
  expiresAt: time.nullable().describe('when GC may take it unless pinned or referenced by then; null while it is'),
  corrupt: z.boolean().describe('a read found its bytes wrong: quarantined until uploaded again'),
});
export const blobListResponse = z.object({ blobs: z.array(blobResponse) });
export const blobUploadResponse = z.object({
  id: z.string(),
  offset: z.number().int().describe('bytes received: where the next chunk starts (Upload-Offset)'),
  expiresAt: time.describe('the session and its bytes go if no chunk comes by then'),
});
export const blobGcResponse = z.object({
  blobs: z.number().int(),
  bytes: z.number(),
  uploads: z.number().int(),
  quarantined: z.number().int(),
});

const imageInfo = z.object({
  names: z.array(z.string()),
  digest: z.string(),
  size: z.number(),
  unpackedSize: z.number(),
  layers: z.number().int(),
  createdAt: z.string(),
  source: z.string(),
});
export const imageListResponse = z.object({ images: z.array(imageInfo) });
export const imageDetailResponse = imageInfo.extend({
  manifest: z.record(z.string(), z.unknown()).describe('the OCI image manifest'),
  config: z.record(z.string(), z.unknown()).describe('the OCI image config'),
  rootfs: z.string(),
});
export const imageRemoveResponse = z.object({ removed: z.array(z.string()) });
export const imagePruneResponse = z.object({ blobs: z.number().int(), unpacked: z.number().int(), bytes: z.number() });
export const imageImportResponse = z.object({ images: z.array(z.object({ names: z.array(z.string()), digest: z.string() })) });
export const builtImagesResponse = z.object({
  images: z.array(
    z.object({
      name: z.string(),
      hash: z.string(),
      from: z.string(),
      packages: z.array(z.string()),
      bytes: z.number(),
      createdAt: z.number(),
      digest: z.string(),
    }),
  ),
});

/** Piston v2's shapes (its errors are `{message}`). */
export const pistonErrorResponse = z.object({ message: z.string() });
export const pistonRuntimesResponse = z.array(
  z.object({ language: z.string(), version: z.string(), aliases: z.array(z.string()) }),
);
const pistonStage = z.object({
  stdout: z.string(),
  stderr: z.string(),
  output: z.string(),
  code: z.number().int().nullable(),
  signal: z.string().nullable(),
  message: z.string().nullable(),
  status: z.enum(['TO', 'OL', 'SG', 'RE']).nullable(),
  cpu_time: z.number(),
  wall_time: z.number(),
  memory: z.number(),
});
export const pistonExecuteResponse = z.object({
  language: z.string(),
  version: z.string(),
  run: pistonStage,
  compile: pistonStage.optional(),
});

/** The REPL API's shapes. */
export const replLanguagesResponse = z.array(z.string());
export const replExecuteResponse = z.object({ result: z.string(), success: z.boolean() });

/** A JSON-RPC 2.0 message (MCP, whose SDK shapes its results); its own errors come in this shape too. */
export const jsonRpcResponse = z.looseObject({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string(), z.number(), z.null()]).optional(),
  result: z.unknown().optional(),
  error: z.looseObject({ code: z.number().int(), message: z.string(), data: z.unknown().optional() }).optional(),
});
/** What a POST to /mcp answers: one message, or a batch. */
export const jsonRpcReply = z.union([jsonRpcResponse, z.array(jsonRpcResponse)]);

/** Any JSON object (this document, for one). */
export const anyObject = z.record(z.string(), z.unknown());

/** Every response schema by the name it has under components.schemas. */
export const RESPONSE_SCHEMAS = {
  Error: errorResponse,
  Health: healthResponse,
  Node: nodeResponse,
  Languages: languagesResponse,
  ExecResult: execResult,
  RunResult: runResult,
  Sandbox: sandboxResponse,
  SandboxList: sandboxListResponse,
  Network: networkResponse,
  FileInfo: fileInfo,
  FileList: fileListResponse,
  Process: processInfo,
  ProcessList: processListResponse,
  Workspace: workspaceResponse,
  WorkspaceOpened: workspaceOpenResponse,
  WorkspaceList: workspaceListResponse,
  Volume: volumeResponse,
  VolumeList: volumeListResponse,
  App: appResponse,
  AppList: appListResponse,
  TokenList: tokenListResponse,
  TokenCreated: tokenCreateResponse,
  Blob: blobResponse,
  BlobList: blobListResponse,
  BlobUpload: blobUploadResponse,
  BlobGc: blobGcResponse,
  ImageList: imageListResponse,
  ImageDetail: imageDetailResponse,
  ImageRemoved: imageRemoveResponse,
  ImagePruned: imagePruneResponse,
  ImagesImported: imageImportResponse,
  BuiltImages: builtImagesResponse,
  PistonError: pistonErrorResponse,
  PistonRuntimes: pistonRuntimesResponse,
  PistonExecuteResult: pistonExecuteResponse,
  ReplLanguages: replLanguagesResponse,
  ReplResult: replExecuteResponse,
  JsonRpcMessage: jsonRpcResponse,
  JsonRpcReply: jsonRpcReply,
  Job: jobResponse,
  JobList: jobListResponse,
  JobCancelled: jobCancelResponse,
  JobRun: jobRunResponse,
  JobArtifacts: jobArtifactListResponse,
  ClusterNode: clusterNodeResponse,
  NodeList: nodeListResponse,
  ClusterInvite: clusterInviteResponse,
  MetricsHistory: metricsHistoryResponse,
  Service: serviceResponse,
  ServiceList: serviceListResponse,
  ManifestStatus: manifestStatusResponse,
  ManifestApplied: manifestAppliedResponse,
  ManifestDiff: manifestDiffResponse,
  TrustList: trustListResponse,
  TrustedKey: trustedKeyResponse,
  UpgradeStatus: upgradeStatusResponse,
  UpgradeAccepted: upgradeAcceptedResponse,
  PackageDeployment: packageDeploymentResponse,
  ServiceHistory: serviceHistoryResponse,
  PreviewUrl: previewUrlResponse,
  PreviewUrlList: previewUrlListResponse,
  PreviewRevoked: previewRevokedResponse,
  SandboxStats: sandboxStatsResponse,
  LogLines: logLinesResponse,
  UiSession: uiSessionResponse,
  OpenApiDocument: anyObject,
} as const satisfies Record<string, z.ZodType>;

export type ResponseName = keyof typeof RESPONSE_SCHEMAS;
