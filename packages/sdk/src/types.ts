/** Shapes of the realm API, as the SDK sees them. */

export type Verdict = 'ok' | 'runtime-error' | 'compile-error' | 'timeout' | 'oom' | 'output-limit' | 'fuel-exhausted';

/** Sizes accept bytes or text like `512m`; durations accept ms or text like `10s`. */
export type Size = number | string;
export type Duration = number | string;

/** Where in a cluster the work goes: the node named, or one carrying every tag (least loaded first). */
export interface Placement {
  node?: string;
  tags?: string[];
  /** `OS/ARCH`, e.g. linux/amd64 (linux/x86_64 is the same). */
  platform?: string;
}

export interface SandboxCreateOptions {
  /** In a cluster: which node may take it (a lone node checks it against itself). */
  placement?: Placement;
  image?: string;
  driver?: 'namespace' | 'gvisor' | 'microvm' | 'wasm';
  name?: string;
  memory?: Size;
  cpus?: number | string;
  pids?: number;
  disk?: Size;
  tmp?: Size;
  network?: 'none' | 'all';
  /** Reach only these (HOST[:PORT], `*.example.com`), through a filtering proxy outside the sandbox. */
  allow?: string[];
  /** Never these; wins over allow. */
  deny?: string[];
  /** Headers the proxy adds to plain HTTP requests to a host (secrets that never enter the sandbox). */
  inject?: { host: string; header: string; value: string }[];
  volumes?: { volume: string; path: string; readOnly?: boolean }[];
  env?: Record<string, string>;
  labels?: Record<string, string>;
  /** Time to live; 0 for none. Default 1h. */
  ttl?: Duration;
}

export interface SandboxInfo {
  id: string;
  name: string | null;
  driver: 'namespace' | 'gvisor' | 'microvm' | 'wasm';
  image: string;
  /** `lost`: in a cluster's list, one on a node that is down (lost unless it comes back). */
  status: 'creating' | 'running' | 'stopped' | 'destroying' | 'lost';
  limits: { memoryBytes: number; pids: number; cpus: number; diskBytes: number; tmpBytes: number };
  network: 'none' | 'all';
  allow: string[];
  deny: string[];
  inject: { host: string; header: string }[];
  volumes: { volume: string; path: string; readOnly: boolean }[];
  labels: Record<string, string>;
  createdAt: string;
  expiresAt: string | null;
  /** In a cluster (its list, and one sandbox asked for by id): the node it lives on. */
  node?: string;
}

export interface ExecOptions {
  env?: Record<string, string>;
  cwd?: string;
  stdin?: string;
  timeout?: Duration;
  memory?: Size;
  pids?: number;
  cpus?: number | string;
  /** Most bytes of stdout+stderr kept; more ends the exec with verdict `output-limit`. */
  output?: Size;
  /** wasm sandboxes: an instruction budget (Wasmtime fuel); past it the verdict is `fuel-exhausted`. */
  fuel?: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  verdict: Verdict;
  wallMs: number;
  cpuMs: number;
  memoryBytes: number;
}

export interface RunOptions {
  language: string;
  /** In a cluster: which node may run it (a lone node checks it against itself). */
  placement?: Placement;
  /** Isolation for the run's sandbox (default namespace). */
  driver?: 'namespace' | 'gvisor' | 'microvm' | 'wasm';
  code?: string;
  /** The first file is the main one; binary files as `encoding: 'base64'` (or `'hex'`). */
  files?: { name?: string; content: string; encoding?: 'utf8' | 'base64' | 'hex' }[];
  stdin?: string;
  args?: string[];
  timeout?: Duration;
  compileTimeout?: Duration;
  memory?: Size;
  compileMemory?: Size;
  pids?: number;
  /** Processes and threads for the compile step (default 512). */
  compilePids?: number;
  cpus?: number | string;
  output?: Size;
  disk?: Size;
  network?: 'none' | 'all';
  /** wasm: an instruction budget (Wasmtime fuel); past it the verdict is `fuel-exhausted`. */
  fuel?: number;
  signal?: AbortSignal;
}

export interface RunResult extends ExecResult {
  language: string;
  compile?: ExecResult;
}

export interface VolumeInfo {
  name: string;
  createdAt: string;
  usedBy: string[];
}

/** An app on the node's gateway (`realm push`), served at http://GATEWAY/NAME/…. */
export interface AppInfo {
  name: string;
  sha256: string;
  size: number;
  /** Each request's memory cap, bytes. */
  memory: number;
  /** Wasmtime fuel per request; null: none. */
  fuel: number | null;
  timeoutMs: number;
  /** `local`: served to loopback clients only; `public`: to anyone who reaches the gateway. */
  visibility: 'local' | 'public';
  /** Runners serving it: how many of its requests run at once. */
  replicas: number;
  createdAt: string;
  /** This daemon's figures for the app since it was pushed (or since the daemon started). */
  stats: {
    requests: number;
    /** Requests answered with a gateway error (trap, deadline, fuel, memory, no response). */
    failed: number;
    /** The most memory one request's instance grew to, bytes; null before a request reported one. */
    memoryPeakBytes: number | null;
  };
}

export interface PushAppOptions {
  /** `[a-z0-9][a-z0-9-]{0,62}`: the first path segment of its URLs. */
  name: string;
  /** A wasi:http/incoming-handler component (WASI 0.2, the wasi:http/proxy world), or a WASI preview 1 module (wasm32-wasi) that speaks CGI. */
  module: Uint8Array;
  /** Each request's memory cap: bytes or `64m` (default 64m). */
  memory?: string | number;
  /** Wasmtime fuel per request. */
  fuel?: number;
  /** Each request's deadline: ms or `100ms`, `5s` (default 10s). */
  timeout?: string | number;
  visibility?: 'local' | 'public';
  /** Runners serving it, 1-16 (default 2): how many of its requests run at once. */
  replicas?: number;
}

export interface LanguageInfo {
  name: string;
  aliases: string[];
  image: string;
  version: string;
  compiled: boolean;
  /** False when its image is not built on this node (`realm image build IMAGE`). */
  ready: boolean;
}

/** What to build: a name and a recipe, or only the name of a recipe file the daemon has. */
export interface ImageBuildOptions {
  name: string;
  /** `debian:SUITE`, e.g. `debian:bookworm`. */
  from?: string;
  packages?: string[];
  /** A Debian mirror URL (default: the one the daemon's host uses). */
  mirror?: string;
  /** Extra files written into the image: absolute path → content. */
  files?: Record<string, string>;
  /** Paths (globs) removed after installing, to keep the image small. */
  remove?: string[];
  /** Build even when the cache holds this recipe. */
  noCache?: boolean;
}

export interface ImageBuildProgress {
  phase: string;
  message: string;
  /** Rough share done, 0..100. */
  percent: number;
}

export interface ImageBuildResult {
  name: string;
  /** The recipe hash: the cache key. */
  hash: string;
  /** `installed`: already this recipe; `tarball`: unpacked from the cache; `built`: built now. */
  cache: 'installed' | 'tarball' | 'built';
  /** Bytes of the image's one layer (the root filesystem tarball). */
  bytes: number;
  /** The image's manifest digest in the image store (`realm image ls`). */
  digest: string;
  /** Where the image is unpacked on the daemon's host. */
  rootfs: string;
  ms: number;
}

/** An image of the store built from a recipe (`realm image build`); its config labels say which. */
export interface BuiltImage {
  name: string;
  /** The recipe hash (label `org.realm.recipe`). */
  hash: string;
  /** The base (label `org.realm.base`), e.g. `debian:bookworm`. */
  from: string;
  /** Label `org.realm.packages`. */
  packages: string[];
  bytes: number;
  createdAt: number;
  /** The image's manifest digest. */
  digest: string;
}

/** What a driver can be asked for on this node; the daemon refuses the rest with `DRIVER_UNAVAILABLE`. */
export interface DriverCapabilities {
  /** The network modes a sandbox may have (`allowlist`: `allow` rules through the node's proxy). */
  networkModes: ('none' | 'all' | 'allowlist')[];
  /** Volumes one sandbox may mount; null: no limit of the driver's own. */
  maxVolumes: number | null;
  /** An exec may have a memory limit tighter than its sandbox's. */
  perExecMemoryLimit: boolean;
  /** An exec may have a cpu limit tighter than its sandbox's. */
  perExecCpuLimit: boolean;
  /** An exec may have a process limit of its own. */
  perExecPidsLimit: boolean;
  /** Execs on a pseudo-terminal. */
  tty: boolean;
  /** Execs whose stdin streams in while they run. */
  interactive: boolean;
  /** Sandboxes can be stopped and started again, keeping their files. */
  stopStart: boolean;
  /** An exec runs a native program (a shell, /usr/bin's tools); without it (wasm), a WebAssembly module only. */
  nativePrograms: boolean;
}

export interface DriverInfo {
  name: string;
  available: boolean;
  reason?: string;
  details: Record<string, string | number | boolean>;
  /** What it can be asked for (absent from a daemon older than declared capabilities). */
  capabilities?: DriverCapabilities;
}

export interface NodeInfo {
  version: string;
  platform: string;
  hostname: string;
  dataDir: string;
  sandboxes: number;
  drivers: DriverInfo[];
  /** Whether `realm image build` works here (mmdebstrap installed), and why not. */
  imageBuilds?: { available: boolean; reason?: string; version?: string };
  /** Route groups callers may use over TCP without a token (`realm serve --anonymous`); empty by default. */
  anonymous?: string[];
  /** What the daemon opens beyond realm's closed defaults (flags the operator chose, known limits), as sentences. */
  warnings?: string[];
  /** What network `all` and the proxies may reach: the public internet, plus the ranges the operator opened (`--allow-private`). */
  egress?: { networkAll: string; allowPrivate: string[] };
  /** This node's id, whether it is in a cluster, and whether it is cut off from etcd (fenced: it takes no new work). */
  /** `scheduler`: the node whose scheduler places jobs now (null while none leads). */
  cluster?: { id: string; clustered: boolean; fenced: boolean; tags: string[]; scheduler: string | null };
  /** Whether the daemon exports OpenTelemetry traces (`realm serve --otlp-endpoint`), and to which collector URL. */
  tracing?: { enabled: boolean; endpoint?: string };
}

/** One event of a streamed exec or run: output as it comes, then the result (or an error). */
export type ExecEvent =
  { type: 'stdout'; data: string } | { type: 'stderr'; data: string } | { type: 'exit'; result: ExecResult };

export interface TokenInfo {
  id: string;
  name: string;
  createdAt: string;
  /** The principal it acts as (`uid:N`); null for a token from before owners, which no longer works. */
  owner: string | null;
}

export interface FileInfo {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  /** Octal permissions, e.g. "0644". */
  mode: string;
  mtime: string;
  /** A link's target. */
  target?: string;
}

export interface NetworkInfo {
  network: 'none' | 'all';
  allow: string[];
  deny: string[];
  inject: { host: string; header: string }[];
  /** Connections the sandbox's proxy refused, newest last. */
  denied: { time: string; host: string; port: number; reason: string }[];
}

export interface WorkspaceInfo {
  name: string;
  /** The repository it was cloned from, on the daemon's host. */
  project: string;
  /** The clone, on the daemon's host (git fetch from it to review the agent's commits). */
  path: string;
  /** When it was last opened, or an SSH agent forwarded into it. */
  lastUsedAt: string;
  sandbox: SandboxInfo;
  /** In a cluster's workspace list: the node it lives on (its clone and `path` are on that node's host). */
  node?: string;
}

/** How to make a workspace (ignored when it exists, except `gitconfig`, which is refreshed). */
export interface WorkspaceOpenOptions {
  /** In a cluster: which node may make it (names are cluster-wide; one that exists opens where it lives). */
  placement?: Placement;
  image?: string;
  driver?: 'namespace' | 'gvisor' | 'microvm' | 'wasm';
  /** Default: an allow-list (the origin's host, package indexes, model providers) through a proxy. */
  network?: 'none' | 'all';
  /** Replace the default allow-list (HOST[:PORT] rules, `*.example.com` wildcards). */
  allow?: string[];
  env?: Record<string, string>;
  /** The user's git config, shown read-only inside as the global one (GIT_CONFIG_GLOBAL). */
  gitconfig?: string;
}

/** A preview link of a sandbox port (`sandbox.url(port)`). */
export interface PreviewUrl {
  id: string;
  port: number;
  /** With the link's signed token (a public link's is the clean URL): the only time the token is seen. */
  url: string;
  public: boolean;
  createdAt: string;
  expiresAt: string;
}

export interface PreviewUrlOptions {
  /** How long the link works (`30m`, `1h`, `7d`, or ms; default 1h). */
  expires?: Duration;
  /** Anyone may open the port while the link lives, without a token. */
  public?: boolean;
}
