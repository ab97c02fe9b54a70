/**
 * realm SDK: sandboxes and one-shot runs over realm's HTTP API.
 *
 * @example
 * import { Sandbox, run } from '@realm/sdk';
 * const r = await run({ language: 'python', code: 'print(1)' });
 * const sb = await Sandbox.create({ memory: '512m' });
 * console.log((await sb.exec('python3 -c "print(1)"')).stdout);
 * await sb.destroy();
 */
import { Client, type ClientOptions } from './client.js';
import { InternalError, InvalidRequestError, errorFromBody } from './errors.js';
import { type AgentForwarder, forwardSshAgent } from './ssh-agent.js';
import { readSse } from './sse.js';
import type { SandboxStats } from './observe.js';
import { Files } from './files.js';
import { Processes } from './processes.js';
import { type Interactive, type InteractiveOptions, attach } from './interactive.js';
import type {
  PreviewUrl,
  PreviewUrlOptions,
  BuiltImage,
  ImageBuildOptions,
  ImageBuildProgress,
  ImageBuildResult,
  WorkspaceInfo,
  WorkspaceOpenOptions,
  NetworkInfo,
  Duration,
  ExecEvent,
  ExecOptions,
  ExecResult,
  LanguageInfo,
  NodeInfo,
  RunOptions,
  RunResult,
  SandboxCreateOptions,
  SandboxInfo,
  TokenInfo,
  VolumeInfo,
  AppInfo,
  PushAppOptions,
} from './types.js';

export * from './errors.js';
export * from './types.js';
export { Client, DEFAULT_URL, type ClientOptions, type StreamBody } from './client.js';
export { Files } from './files.js';
export { Blobs, type BlobInfo, type BlobPutOptions, type BlobSource, type BlobUpload } from './blobs.js';
export { Images, type ImageDetail, type ImageInfo, type ImageProgress, type PullOptions } from './images.js';
export {
  Jobs,
  type JobArtifact,
  type JobAttempt,
  type JobInfo,
  type JobRun,
  type JobRunState,
  type JobSpecInput,
} from './jobs.js';
export { Nodes, type ClusterNode, type NodeReport, type NodeState } from './nodes.js';
export { Metrics, type MetricsHistory, type MetricsSample } from './metrics.js';
export {
  Services,
  type PackageInfo,
  type ReplicaInfo,
  type ServiceGeneration,
  type ServiceInfo,
  type ServicePushOptions,
} from './services.js';
export { Packages, type PackageDeployment } from './packages.js';
export {
  Manifest,
  type ManifestApplied,
  type ManifestApp,
  type ManifestService,
  type ManifestPackageService,
  type ManifestStatus,
  type ServiceChange,
  type SignedManifest,
  type TrustedKey,
} from './manifest.js';
export { Upgrades, type NodeUpgradeStatus, type ReleaseStatement, type UpgradeOutcome, type UpgradePhase } from './upgrades.js';
export { Logs, type LogLine, type LogsQuery } from './logs.js';
export { events, type EventsOptions, type RealmEvent, type SandboxStats } from './observe.js';
export { Interactive, type InteractiveExit, type InteractiveOptions } from './interactive.js';
export { SSH_AGENT_PATH, type AgentForwarder } from './ssh-agent.js';
export { BackgroundProcess, Processes, type ProcessEvent, type ProcessInfo } from './processes.js';

const enc = encodeURIComponent;

function withoutSignal<T extends { signal?: AbortSignal }>(o: T): Omit<T, 'signal'> {
  const { signal: _s, ...rest } = o;
  void _s;
  return rest;
}

/** A live sandbox. */
export class Sandbox {
  private constructor(
    readonly client: Client,
    public info: SandboxInfo,
  ) {}

  get id(): string {
    return this.info.id;
  }

  /** Background processes: start detached, reconnect to their output, stdin, signal, kill. */
  get processes(): Processes {
    return new Processes(this.client, this.id);
  }

  /** This sandbox's files: read, write, list, stat, mkdir, remove, move, upload/download tar. */
  get files(): Files {
    return new Files(this.client, this.id);
  }

  /**
   * Create and start a sandbox.
   * @example const sb = await Sandbox.create({ image: 'host', memory: '512m', network: 'none' });
   */
  static async create(opts: SandboxCreateOptions = {}, client: ClientOptions | Client = {}): Promise<Sandbox> {
    const c = asClient(client);
    return new Sandbox(c, await c.request<SandboxInfo>('POST', '/v1/sandboxes', opts));
  }

  /** Attach to an existing sandbox by id or name. */
  static async get(idOrName: string, client: ClientOptions | Client = {}): Promise<Sandbox> {
    const c = asClient(client);
    return new Sandbox(c, await c.request<SandboxInfo>('GET', `/v1/sandboxes/${enc(idOrName)}`));
  }

  /** List sandboxes, optionally only those carrying all the given labels. */
  static async list(
    filter: { labels?: Record<string, string>; status?: string } = {},
    client: ClientOptions | Client = {},
  ): Promise<SandboxInfo[]> {
    const c = asClient(client);
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter.labels ?? {})) q.append('label', `${k}=${v}`);
    if (filter.status) q.set('status', filter.status);
    const qs = q.toString();
    return (await c.request<{ sandboxes: SandboxInfo[] }>('GET', `/v1/sandboxes${qs ? `?${qs}` : ''}`)).sandboxes;
  }

  /**
   * Run a command to completion. A string runs under `/bin/sh -c`; an array is argv.
   * @example const r = await sb.exec(['python3', '-c', 'print(1)'], { timeout: '5s' });
   */
  exec(command: string | string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return this.client.request<ExecResult>(
      'POST',
      `/v1/sandboxes/${enc(this.id)}/exec`,
      { command, ...withoutSignal(opts) },
      opts.signal,
    );
  }

  /**
   * Run a command and get its output as it comes: `stdout`/`stderr` events, then `exit`.
   * Breaking out of the loop (or aborting `opts.signal`) kills the command.
   * @example for await (const ev of sb.execStream('for i in 1 2 3; do echo $i; sleep 1; done')) if (ev.type === 'stdout') process.stdout.write(ev.data);
   */
  execStream(command: string | string[], opts: ExecOptions = {}): AsyncGenerator<ExecEvent> {
    return streamEvents(
      this.client,
      `/v1/sandboxes/${enc(this.id)}/exec/stream`,
      { command, ...withoutSignal(opts) },
      opts.signal,
    );
  }

  /**
   * Run a command interactively, on a terminal by default: type into it, read it as it comes,
   * resize it. `realm sandbox shell` is built on this.
   * @example const t = await sb.attach('bash'); t.onData((_, d) => process.stdout.write(d)); t.write('ls\n');
   */
  attach(command: string | string[], opts: InteractiveOptions = {}): Promise<Interactive> {
    return attach(this.client, this.id, command, opts);
  }

  /** Refresh `info` from the daemon. */
  async refresh(): Promise<SandboxInfo> {
    this.info = await this.client.request<SandboxInfo>('GET', `/v1/sandboxes/${enc(this.id)}`);
    return this.info;
  }

  /**
   * Give the sandbox a new time to live, counted from now (0: none), and/or new labels.
   * @example await sb.update({ ttl: '2h' });
   */
  async update(changes: { ttl?: Duration; labels?: Record<string, string> }): Promise<void> {
    this.info = await this.client.request<SandboxInfo>('PATCH', `/v1/sandboxes/${enc(this.id)}`, changes);
  }

  /** Signal every process in the sandbox (its init excepted). */
  async signal(
    signal: 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGSTOP' | 'SIGCONT' = 'SIGTERM',
  ): Promise<void> {
    await this.client.request('POST', `/v1/sandboxes/${enc(this.id)}/signal`, { signal });
  }

  /**
   * What it uses now: cpu (seconds, % of one core), memory (now, peak), pids, disk, network bytes.
   * @example const s = await sb.stats(); console.log(s.memory.bytes, s.cpu.percent);
   */
  stats(): Promise<SandboxStats> {
    return this.client.request<SandboxStats>('GET', `/v1/sandboxes/${enc(this.id)}/stats`);
  }

  /**
   * Its figures every `interval` (default `1s`) until `signal` aborts or the sandbox stops or goes
   * (then the error is thrown: SANDBOX_NOT_RUNNING, SANDBOX_NOT_FOUND).
   * @example for await (const s of sb.statsStream({ interval: '2s' })) console.log(s.memory.bytes);
   */
  async *statsStream(opts: { interval?: Duration; signal?: AbortSignal } = {}): AsyncGenerator<SandboxStats> {
    const q = opts.interval !== undefined ? `?interval=${encodeURIComponent(String(opts.interval))}` : '';
    const body = await this.client.stream('GET', `/v1/sandboxes/${enc(this.id)}/stats/stream${q}`, undefined, opts.signal);
    for await (const msg of readSse(body)) {
      if (msg.event === 'stats') yield JSON.parse(msg.data) as SandboxStats;
      else if (msg.event === 'error') throw errorFromBody(409, JSON.parse(msg.data));
    }
  }

  /** Its network policy and the connections its proxy refused. */
  network(): Promise<NetworkInfo> {
    return this.client.request<NetworkInfo>('GET', `/v1/sandboxes/${enc(this.id)}/network`);
  }

  /**
   * A signed, expiring link to `port` of the sandbox through the gateway
   * (`http://<port>-<id>.realm.localhost:8080/?realm_preview=…`): opening it sets a cookie for that
   * host alone. API tokens of the owner work on the clean URL too (`Authorization: Bearer`).
   * @example const { url } = await sandbox.url(8000, { expires: '2h' });
   */
  async url(port: number, opts: PreviewUrlOptions = {}): Promise<PreviewUrl> {
    return this.client.request<PreviewUrl>('POST', `/v1/sandboxes/${enc(this.id)}/urls`, { port, ...opts });
  }

  /** The sandbox's live preview links (without their tokens). */
  async urls(): Promise<PreviewUrl[]> {
    return (await this.client.request<{ urls: PreviewUrl[] }>('GET', `/v1/sandboxes/${enc(this.id)}/urls`)).urls;
  }

  /** Revoke every link to `port` (and the cookies they became); how many there were. */
  async revokeUrls(port: number): Promise<number> {
    return (await this.client.request<{ revoked: number }>('DELETE', `/v1/sandboxes/${enc(this.id)}/urls/${port}`)).revoked;
  }

  async stop(): Promise<void> {
    this.info = await this.client.request<SandboxInfo>('POST', `/v1/sandboxes/${enc(this.id)}/stop`, {});
  }

  async start(): Promise<void> {
    this.info = await this.client.request<SandboxInfo>('POST', `/v1/sandboxes/${enc(this.id)}/start`, {});
  }

  /** Destroy the sandbox; its volumes stay. */
  async destroy(): Promise<void> {
    await this.client.request('DELETE', `/v1/sandboxes/${enc(this.id)}`);
  }
}

/**
 * One-shot run: language + code → output and a verdict.
 * @example const r = await run({ language: 'python', code: 'print(1)' }); // r.stdout === '1\n'
 */
export function run(opts: RunOptions, client: ClientOptions | Client = {}): Promise<RunResult> {
  const c = asClient(client);
  return c.request<RunResult>('POST', '/v1/runs', withoutSignal(opts), opts.signal);
}

/**
 * A one-shot run whose output comes as it is produced (see {@link Sandbox.execStream}).
 * @example for await (const ev of runStream({ language: 'python', code: 'print(1)' })) console.log(ev);
 */
export function runStream(opts: RunOptions, client: ClientOptions | Client = {}): AsyncGenerator<ExecEvent> {
  return streamEvents(asClient(client), '/v1/runs/stream', withoutSignal(opts), opts.signal);
}

async function* streamEvents(client: Client, path: string, body: unknown, signal?: AbortSignal): AsyncGenerator<ExecEvent> {
  for await (const msg of readSse(await client.stream('POST', path, body, signal))) {
    const data = JSON.parse(msg.data) as { data?: string; error?: { code: string; message: string } } & ExecResult;
    if (msg.event === 'stdout' || msg.event === 'stderr') yield { type: msg.event, data: data.data ?? '' };
    else if (msg.event === 'exit') {
      yield { type: 'exit', result: data };
      return;
    } else if (msg.event === 'error') throw errorFromBody(500, data);
  }
  throw new InternalError('INTERNAL', 'the stream ended before the program did');
}

function asClient(client: ClientOptions | Client): Client {
  return client instanceof Client ? client : new Client(client);
}

/** The daemon's node: version, drivers and what this host can do. */
export function nodeInfo(client: ClientOptions | Client = {}): Promise<NodeInfo> {
  const c = asClient(client);
  return c.request<NodeInfo>('GET', '/v1/node');
}

export async function languages(client: ClientOptions | Client = {}): Promise<LanguageInfo[]> {
  const c = asClient(client);
  return (await c.request<{ languages: LanguageInfo[] }>('GET', '/v1/languages')).languages;
}

export const volumes = {
  async list(client: ClientOptions | Client = {}): Promise<VolumeInfo[]> {
    const c = asClient(client);
    return (await c.request<{ volumes: VolumeInfo[] }>('GET', '/v1/volumes')).volumes;
  },
  async remove(name: string, client: ClientOptions | Client = {}): Promise<void> {
    const c = asClient(client);
    await c.request('DELETE', `/v1/volumes/${enc(name)}`);
  },
};

/**
 * Apps on the node's gateway, served at /NAME/…: wasi:http/incoming-handler components and WASI preview 1 CGI modules.
 * @example
 * await apps.push({ name: 'hello', module: readFileSync('hello.wasm'), timeout: '100ms' });
 */
export const apps = {
  /** Deploy (or replace one's own) app; refused with APP_INVALID / APP_UNSUPPORTED / APP_NAME_TAKEN. */
  async push(opts: PushAppOptions, client: ClientOptions | Client = {}): Promise<AppInfo> {
    const c = asClient(client);
    const { module, ...rest } = opts;
    return c.request<AppInfo>('POST', '/v1/apps', { ...rest, module: Buffer.from(module).toString('base64') });
  },
  async list(client: ClientOptions | Client = {}): Promise<AppInfo[]> {
    const c = asClient(client);
    return (await c.request<{ apps: AppInfo[] }>('GET', '/v1/apps')).apps;
  },
  get(name: string, client: ClientOptions | Client = {}): Promise<AppInfo> {
    return asClient(client).request<AppInfo>('GET', `/v1/apps/${enc(name)}`);
  },
  /** Remove one's own app; in a cluster, APP_NAME_TAKEN when another node pushed it again meanwhile (look again, remove again). */
  async remove(name: string, client: ClientOptions | Client = {}): Promise<void> {
    await asClient(client).request('DELETE', `/v1/apps/${enc(name)}`);
  },
};

/** Images built from Debian packages (cached by recipe); the image store itself is `client.images`. */
export const images = {
  /**
   * Build an image; progress comes to `onProgress` as it happens. Aborting `signal` (or losing
   * the connection) cancels the build and leaves nothing behind.
   * @example await images.build({ name: 'py', from: 'debian:bookworm', packages: ['python3'] }, { onProgress: (p) => console.log(p.percent, p.message) });
   */
  async build(
    opts: ImageBuildOptions,
    o: { onProgress?: (p: ImageBuildProgress) => void; signal?: AbortSignal } = {},
    client: ClientOptions | Client = {},
  ): Promise<ImageBuildResult> {
    const res = await asClient(client).send('POST', '/v1/images/build', opts, o.signal);
    if (!res.body) throw new InternalError('INTERNAL', 'the daemon sent an empty stream');
    for await (const msg of readSse(res.body)) {
      const data = JSON.parse(msg.data) as unknown;
      if (msg.event === 'progress') o.onProgress?.(data as ImageBuildProgress);
      else if (msg.event === 'done') return data as ImageBuildResult;
      else if (msg.event === 'error') throw errorFromBody(500, data);
    }
    throw new InternalError('INTERNAL', 'the stream ended before the build did');
  },
  /** Images built from recipes on this node. */
  async built(client: ClientOptions | Client = {}): Promise<BuiltImage[]> {
    return (await asClient(client).request<{ images: BuiltImage[] }>('GET', '/v1/images/built')).images;
  },
};

/** API tokens: wanted on TCP; each acts as the user who made it (over the unix socket, no token is needed). */
export const tokens = {
  /** Create a token; the answer holds its secret, shown this once. */
  async create(name: string, client: ClientOptions | Client = {}): Promise<TokenInfo & { token: string }> {
    return asClient(client).request<TokenInfo & { token: string }>('POST', '/v1/tokens', { name });
  },
  async list(client: ClientOptions | Client = {}): Promise<TokenInfo[]> {
    return (await asClient(client).request<{ tokens: TokenInfo[] }>('GET', '/v1/tokens')).tokens;
  },
  async revoke(id: string, client: ClientOptions | Client = {}): Promise<void> {
    await asClient(client).request('DELETE', `/v1/tokens/${enc(id)}`);
  },
};

/** Workspaces: private clones of a git repository in long-lived sandboxes, for coding agents. */
export const workspaces = {
  /**
   * Resume workspace `name`, or create it as a clone of the repository holding `repo` (a path on the daemon's host;
   * in a cluster, on the host of the node that makes it, chosen by `opts.placement`). Names are cluster-wide.
   * @example const ws = await workspaces.open('fix-bug', process.cwd()); const sb = await Sandbox.get(ws.sandbox.id);
   * @example await workspaces.open('train', '/srv/repo', { placement: { tags: ['gpu'] } });
   */
  async open(
    name: string,
    repo: string,
    opts: WorkspaceOpenOptions = {},
    client: ClientOptions | Client = {},
  ): Promise<WorkspaceInfo & { created: boolean }> {
    return asClient(client).request<WorkspaceInfo & { created: boolean }>('POST', '/v1/workspaces', { name, repo, ...opts });
  },
  async list(client: ClientOptions | Client = {}): Promise<WorkspaceInfo[]> {
    return (await asClient(client).request<{ workspaces: WorkspaceInfo[] }>('GET', '/v1/workspaces')).workspaces;
  },
  get(name: string, client: ClientOptions | Client = {}): Promise<WorkspaceInfo> {
    return asClient(client).request<WorkspaceInfo>('GET', `/v1/workspaces/${enc(name)}`);
  },
  /** Remove the sandbox, the clone and its record; the original repository is never touched. */
  async delete(name: string, client: ClientOptions | Client = {}): Promise<void> {
    await asClient(client).request('DELETE', `/v1/workspaces/${enc(name)}`);
  },
  /**
   * Forward the SSH agent at `agentSocket` (default: $SSH_AUTH_SOCK) into a running workspace
   * until `close()`; inside, SSH_AUTH_SOCK=/.realm/share/ssh-agent.sock reaches it.
   * @example const fwd = await workspaces.forwardSshAgent('fix-bug'); ...; fwd.close();
   */
  forwardSshAgent(
    name: string,
    agentSocket = process.env.SSH_AUTH_SOCK ?? '',
    client: ClientOptions | Client = {},
  ): Promise<AgentForwarder> {
    if (!agentSocket) return Promise.reject(new InvalidRequestError('INVALID_REQUEST', 'no SSH agent: SSH_AUTH_SOCK is not set'));
    return forwardSshAgent(asClient(client), name, agentSocket);
  },
};

/** True when a daemon answers /v1/health. */
export async function ping(client: ClientOptions | Client = {}): Promise<boolean> {
  const c = asClient(client);
  try {
    await c.request('GET', '/v1/health');
    return true;
  } catch {
    return false;
  }
}
