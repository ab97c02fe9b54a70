/** Start the daemon: open the store, build the engine, recover sandboxes, listen. */
import { availableParallelism } from 'node:os';
import { chmodSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import { Client } from '@realm/sdk';
import { Engine } from '../engine/engine.js';
import { checkImageDirs } from '../engine/image-dirs.js';
import { HostIds, type UidRange, defaultUidRange } from '../engine/host-ids.js';
import { WasmDriver } from '../drivers/wasm/driver.js';
import { NamespaceDriver } from '../drivers/namespace/driver.js';
import { GvisorDriver } from '../drivers/gvisor/driver.js';
import { MicrovmDriver, defaultKernelDir } from '../drivers/microvm/driver.js';
import { claimDaemon } from './claim.js';
import { type Driver, type DriverName, opaque } from '../drivers/driver.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { LANGUAGES_DIR } from '../util/paths.js';
import { DEFAULT_GATEWAY, defaultSocketPath, parseGateway, parseListen } from '../config.js';
import { Apps } from '../gateway/apps.js';
import { Services } from '../services/services.js';
import { Manifests } from '../services/manifest.js';
import { type Gateway, startGateway } from '../gateway/server.js';
import { DEFAULT_PREVIEW_DOMAIN, Preview } from '../gateway/preview.js';
import { PreviewLinks } from '../gateway/preview-links.js';
import { type PublicListener, startPublicListener } from '../gateway/preview-listen.js';
import { GatewayRelay } from '../gateway/relay.js';
import { parseCidr } from '../net/addresses.js';
import { startEgress, stopEgress } from '../net/egress.js';
import { createApp } from './app.js';
import { warnings } from './posture.js';
import { Tokens } from './auth.js';
import { BodilessResponse } from './hygiene.js';
import type { AnonymousGroup } from './access.js';
import { listenUnix } from './listen-unix.js';
import { type TlsFiles, loadListenTls } from './listen-tls.js';
import { readPem } from '../util/pem.js';
import { usePeerCa } from '../cluster/peer-tls.js';
import type { Principal } from './principal.js';
import { BlobStore } from '../blobs/store.js';
import { Jobs } from '../jobs/jobs.js';
import { jobBlobs } from '../jobs/blobs.js';
import { BlobPeers } from '../cluster/blob-peers.js';
import { AppsCluster } from '../cluster/apps-cluster.js';
import { ImagePeers } from '../cluster/image-peers.js';
import { SqliteBlobIndex } from '../store/sqlite/blobs.js';
import type { NodeReport, Nodes } from '../cluster/types.js';
import { ServiceCluster } from '../cluster/service-cluster.js';
import { EtcdNodes } from '../cluster/membership.js';
import { LocalNodes } from '../cluster/local.js';
import { ClusterRuns } from '../cluster/job-dispatch.js';
import { EtcdJobStore } from '../cluster/job-store.js';
import { type EtcdTls, etcdClient } from '../cluster/etcd.js';
import { nodeId } from '../cluster/node-id.js';
import { nodeReport } from '../cluster/report.js';
import { Metrics } from '../metrics/metrics.js';
import { History } from '../metrics/history.js';
import { type MetricsParts, startMetricsListener } from './routes/metrics.js';
import { startTracing, tracingState } from '../telemetry/trace.js';
import { VERSION } from '../version.js';
import { DaemonLogs, type LogOptions } from '../logs/logger.js';
import { log } from '../logs/log.js';
import { Upgrades } from '../upgrade/upgrades.js';

export interface DaemonOptions {
  listen: string;
  dataDir: string;
  /** Host uids sandboxes run as, one each (default REALM_UID_RANGE, else 1879048192:65536). */
  uidRange?: UidRange;
  maxSandboxes: number;
  /** Sandboxes kept ready per shape for creates and runs (default 2; 0 turns warm pools off). */
  warm?: number;
  /** Most sandboxes a busy shape keeps ready (default 4 × warm). */
  warmMax?: number;
  /** Most one-shot runs at once (default 64). */
  maxRuns?: number;
  /** Names the network proxies resolve to fixed addresses (REALM_PROXY_HOSTS="name=ip,…"). */
  pinnedHosts?: Record<string, string>;
  /** Address ranges (CIDR) sandboxes may reach although private, link-local or the host's: for network all and the proxies alike. */
  allowPrivate?: string[];
  /** Extra CAs (PEM file) for hosts the proxies talk TLS to; default REALM_PROXY_CA_FILE. */
  proxyUpstreamCa?: string;
  /** The unix socket local users' CLIs talk to, served as their uid (default: defaultSocketPath()). */
  socket?: string;
  /** Route groups TCP callers without a token may use (default none): `runs` opens one-shot runs and the Piston/REPL routes. */
  anonymous?: AnonymousGroup[];
  /** Where built image tarballs are cached (default <data-dir>/cache/images; REALM_IMAGE_CACHE). */
  imageCacheDir?: string;
  /** cgroup under each hierarchy's root that holds this daemon's sandboxes. */
  cgroupRoot?: string;
  /** Most job runs at once (default: this node's cpus). */
  maxJobs?: number;
  /** Most bytes of job logs kept, all jobs together (default 4 GiB). */
  maxJobLogBytes?: number;
  /** Most bytes one image layer may have, compressed or unpacked (default 8 GiB). */
  maxLayerBytes?: number;
  /** The driver of creates and runs that name none (default namespace). */
  defaultDriver?: DriverName;
  /** Host directories whose subdirectories may be images (`--image-dir`); none by default. */
  imageDirs?: string[];
  /** Let the microvm driver run under TCG emulation where KVM cannot boot guests (default: REALM_MICROVM_ALLOW_EMULATION=1). Slow; for tests. */
  microvmAllowEmulation?: boolean;
  /** Names (or addresses) besides the listen address that `Host` may carry: `name` or `name:port` (realm serve --host-name). */
  hostNames?: string[];
  /** Where the app gateway listens: host:port, or `off` (default 127.0.0.1:8080; REALM_GATEWAY). */
  gateway?: string;
  /** The domain of preview URLs, `<port>-<sandbox>.<domain>` (default realm.localhost; REALM_PREVIEW_DOMAIN). */
  previewDomain?: string;
  /** A listener (host:port) that serves preview URLs only, never the API nor apps. */
  publicListen?: string;
  /** Web origins (`scheme://host[:port]`) whose pages may call the API, answered with CORS (realm serve --cors-origin). */
  corsOrigins?: string[];
  /** The blob store's grace period: how long an unpinned, unreferenced blob is kept (ms; default 1 h; REALM_BLOB_GRACE). */
  blobGraceMs?: number;
  /** How often blob GC runs on its own (ms; default 10 min; 0: only on demand). */
  blobGcIntervalMs?: number;
  /** etcd endpoints (`etcd://HOST:PORT[,…]`, `etcds://` for TLS): join that cluster; none: this node alone. */
  cluster?: string;
  /** TLS files for etcds:// endpoints. */
  etcdTls?: EtcdTls;
  /** This node's tags (`--tag`): placement matches work against them. */
  tags?: string[];
  /** Where other nodes reach this node's API (default: its listen address). */
  advertise?: string;
  /** Listen with TLS on the TCP address (https://, wss://): the certificate's and key's PEM files. */
  tls?: TlsFiles;
  /**
   * The CA (PEM file) that signed the peers' --tls-cert: https:// peers are verified against it
   * alone (default: Node's store, the system's CAs and NODE_EXTRA_CA_CERTS). This daemon's MCP
   * tools trust it too when they call its own https API.
   */
  peerCa?: string;
  /** An invite (realm cluster invite): wanted the first time this node joins a cluster that has members. */
  join?: string;
  /** This node's id (default: made once and kept in the data dir). */
  nodeId?: string;
  /** The cluster lease's TTL in seconds: a dead node is down after at most this (default 4; a dead node's jobs are re-placed within 5 s). */
  leaseTtl?: number;
  /** Serve metrics (`GET /metrics`, `/v1/metrics/history`); default true (realm serve --no-metrics). */
  metrics?: boolean;
  /** `GET /metrics` on the API wants no token (realm serve --metrics-public). */
  metricsPublic?: boolean;
  /** Also serve `GET /metrics`, without a token, on this host:port (loopback for a bare port). */
  metricsListen?: string;
  /** The history's sampling interval (ms; default 5 s). */
  metricsIntervalMs?: number;
  /**
   * Export traces by OTLP/HTTP to this collector (its base URL; spans go to `<it>/v1/traces`).
   * Without it, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT; none: no tracing.
   */
  otlpEndpoint?: string;
  /**
   * The daemon's log: level, stderr's form, rotation (`realm serve --log-…`). Its files are in
   * `dir` (default <data-dir>/logs; null: none).
   */
  log?: LogOptions;
  /** Where `realm upgrade` installs releases (`versions/N/`, the `current` link); default <data-dir>/releases. */
  installRoot?: string;
}

export interface Daemon {
  url: string;
  /** The app gateway's URL; null when it is off. */
  gatewayUrl: string | null;
  /** The separate metrics listener's URL (--metrics); null when there is none. */
  metricsUrl: string | null;
  /** The preview-only listener's URL (--public-listen); null when there is none. */
  publicUrl: string | null;
  /** Where traces go (OTLP/HTTP, no credentials); null when tracing is off. */
  tracing: string | null;
  /** What this daemon opens beyond the closed defaults (see posture.ts). */
  warnings: string[];
  /** The unix socket's path. */
  socket: string;
  engine: Engine;
  /** The blob store (its internal API, addRef/dropRef, is for jobs). */
  blobs: BlobStore;
  /** The HTTP application (its routes, for the OpenAPI check). */
  app: Hono;
  /** The cluster's nodes, or this node alone. */
  nodes: Nodes;
  /** Upgrades of realm itself; `realm serve` sets its hand-over. */
  upgrades: Upgrades;
  close(): Promise<void>;
}

function pinnedFromEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.REALM_PROXY_HOSTS ?? '').split(',')) {
    const [name, ip] = pair.split('=').map((x) => x.trim());
    if (name && ip) out[name.toLowerCase()] = ip;
  }
  return out;
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 }); // the engine narrows an older one (see Engine)
  // Before anything is swept: a daemon that shares either with a live one stops here.
  const claim = claimDaemon(opts.dataDir, opts.cgroupRoot ?? 'realm');
  try {
    const d = await startClaimed(opts);
    return {
      ...d,
      close: async () => {
        await d.close();
        claim.release();
      },
    };
  } catch (e) {
    claim.release();
    throw e;
  }
}

/** Start the daemon's parts; if one fails, those already started stop again, in reverse. */
async function startClaimed(opts: DaemonOptions): Promise<Daemon> {
  const started: (() => unknown)[] = [];
  try {
    return await startParts(opts, (stop) => started.push(stop));
  } catch (e) {
    // Nothing a failed start made stays: not the egress guard's cgroup root and nftables table,
    // the store's handle, the engine's timers, the listening sockets.
    for (const stop of started.reverse()) await Promise.resolve(stop()).catch(() => undefined);
    throw e;
  }
}

async function startParts(opts: DaemonOptions, onFailure: (stop: () => unknown) => void): Promise<Daemon> {
  // First: what the start says (recovery, warnings) is logged too.
  const logs = new DaemonLogs({ ...opts.log, dir: opts.log?.dir === undefined ? join(opts.dataDir, 'logs') : opts.log.dir });
  onFailure(() => logs.close());
  // Every TCP request wants a token (but /v1/health and groups opened with `anonymous`), so any address will do.
  const { host, port } = parseListen(opts.listen);
  // TLS files are read (and the pair checked) before anything starts.
  const tls = opts.tls ? loadListenTls(opts.tls) : undefined;
  const peerCa = opts.peerCa ? readPem('--peer-ca', opts.peerCa) : undefined;
  const releasePeerCa = peerCa ? usePeerCa(peerCa) : () => undefined;
  onFailure(releasePeerCa);
  const gatewayAt = parseGateway(opts.gateway ?? process.env.REALM_GATEWAY ?? DEFAULT_GATEWAY);
  const publicAt = opts.publicListen ? parseListen(opts.publicListen) : undefined;
  const previewDomain = (opts.previewDomain ?? process.env.REALM_PREVIEW_DOMAIN ?? DEFAULT_PREVIEW_DOMAIN).toLowerCase();
  if (!/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(previewDomain))
    throw new Error(`--preview-domain ${previewDomain}: write a DNS name such as realm.localhost or preview.example.com`);
  const socketPath = opts.socket ?? defaultSocketPath();
  checkImageDirs(opts.imageDirs ?? [], opts.dataDir); // an unfit --image-dir stops the start here
  const metricsAt = opts.metricsListen !== undefined ? parseMetricsListen(opts.metricsListen, opts.metrics) : null;
  const uidRange = opts.uidRange ?? defaultUidRange();
  const namespace = opaque(
    new NamespaceDriver({
      runtimeDir: join(opts.dataDir, 'runtime'),
      sandboxGroup: new HostIds(uidRange).group,
      cgroupRoot: opts.cgroupRoot ?? 'realm',
    }),
  );
  const drivers = new Map<DriverName, Driver>([
    ['namespace', namespace],
    [
      'gvisor',
      opaque(new GvisorDriver({ runtimeDir: join(opts.dataDir, 'runtime-gvisor'), cgroupRoot: opts.cgroupRoot ?? 'realm' })),
    ],
    [
      'microvm',
      opaque(
        new MicrovmDriver({
          runtimeDir: join(opts.dataDir, 'runtime-microvm'),
          kernelDir: defaultKernelDir(),
          cgroupRoot: opts.cgroupRoot ?? 'realm',
          ...(opts.microvmAllowEmulation !== undefined ? { allowEmulation: opts.microvmAllowEmulation } : {}),
        }),
      ),
    ],
    // WebAssembly runs in runners inside namespace sandboxes.
    ['wasm', opaque(new WasmDriver({ host: namespace, cacheDir: join(opts.dataDir, 'wasm-cache') }))],
  ]);
  const store = new SqliteStore(join(opts.dataDir, 'state.db'), {
    decodeState: (driver, raw) => drivers.get(driver)?.decodeState(raw) ?? raw,
  });
  onFailure(() => store.close());
  const networkAllRefused = await startEgress(opts.cgroupRoot ?? 'realm', (opts.allowPrivate ?? []).map(parseCidr));
  onFailure(() => stopEgress(opts.cgroupRoot ?? 'realm'));
  const engine = new Engine(
    {
      dataDir: opts.dataDir,
      uidRange,
      maxSandboxes: opts.maxSandboxes,
      languageDirs: [],
      warm: opts.warm ?? 2,
      warmMax: opts.warmMax,
      maxRuns: opts.maxRuns ?? 64,
      pinnedHosts: opts.pinnedHosts ?? pinnedFromEnv(),
      allowPrivate: opts.allowPrivate ?? [],
      networkAllRefused,
      proxyUpstreamCa: opts.proxyUpstreamCa ?? process.env.REALM_PROXY_CA_FILE,
      ...(opts.maxLayerBytes ? { maxLayerBytes: opts.maxLayerBytes } : {}),
      ...(opts.defaultDriver ? { defaultDriver: opts.defaultDriver } : {}),
      ...(opts.imageDirs ? { imageDirs: opts.imageDirs } : {}),
      ...((opts.imageCacheDir ?? process.env.REALM_IMAGE_CACHE)
        ? { imageCacheDir: opts.imageCacheDir ?? process.env.REALM_IMAGE_CACHE }
        : {}),
    },
    store,
    drivers,
    [LANGUAGES_DIR, join(opts.dataDir, 'languages')],
  );
  onFailure(() => engine.close());
  logs.follow(engine.events);
  const recovered = await engine.recover();
  await engine.loadLive();
  engine.startReaper();
  await engine.warmDefaults();
  const tokens = new Tokens(store, join(opts.dataDir, 'admin-token'));
  const apps = new Apps(engine, store, opts.dataDir);
  // Clients of our own API for the MCP tools, one per principal they act as; the URL is known once we listen.
  const own: { url?: string; clients: Map<string, Client> } = { clients: new Map() };
  const startedAt = new Date().toISOString();
  const address = (): string => opts.advertise ?? own.url ?? '';
  const jobSlots = opts.maxJobs ?? Math.max(1, availableParallelism());
  const selfId = nodeId(opts.dataDir, opts.nodeId);
  // The cluster's nodes, made here (services keep their desired state in its etcd), joined once the API listens.
  const report = (): Promise<NodeReport> => nodeReport(engine, startedAt, jobSlots);
  const etcdNodes = opts.cluster
    ? new EtcdNodes(etcdClient(opts.cluster, opts.etcdTls), {
        id: selfId,
        address,
        tags: opts.tags ?? [],
        ttl: opts.leaseTtl ?? 4,
        join: opts.join,
        report,
      })
    : undefined;
  const services = new Services(engine, apps, opts.dataDir, selfId, etcdNodes ? new ServiceCluster(etcdNodes) : undefined);
  onFailure(() => services.close());
  const manifests = new Manifests(engine, services, apps, opts.dataDir);
  // In a cluster the trusted keys and versions are the cluster's: read from etcd before the API listens.
  await manifests.start();
  onFailure(() => manifests.close());
  const previewLinks = new PreviewLinks(opts.dataDir);
  const preview = gatewayAt || publicAt ? new Preview(engine, previewLinks, tokens, previewDomain) : undefined;
  const blobs = new BlobStore({
    dataDir: opts.dataDir,
    index: new SqliteBlobIndex(store.database),
    ...(opts.blobGraceMs !== undefined ? { graceMs: opts.blobGraceMs } : {}),
    ...(opts.blobGcIntervalMs !== undefined ? { gcIntervalMs: opts.blobGcIntervalMs } : {}),
  });
  await blobs.start();
  onFailure(() => blobs.close());
  // Before the first request; stopped last, so the spans of the daemon's stop are sent too.
  const stopTracing = await startTracing({ endpoint: opts.otlpEndpoint, instance: selfId, version: VERSION });
  if (stopTracing) onFailure(stopTracing);
  const nodes: Nodes & { start?: () => Promise<void> } = etcdNodes ?? new LocalNodes(selfId, address, opts.tags ?? [], report);
  // In a cluster, what the gateway does not hold is relayed to the node that does (gateway/relay.ts).
  const relay = nodes.clustered ? new GatewayRelay(nodes) : undefined;
  if (preview) preview.relay = relay;
  if (etcdNodes)
    etcdNodes.onMember = (change, id) => engine.events.emit({ type: `node.${change}`, owner: null, ids: { node: id } });
  onFailure(() => nodes.close());
  // In a cluster, a blob this node lacks is fetched by digest from a node that has it.
  const blobPeers = nodes.clustered ? new BlobPeers(nodes, blobs) : undefined;
  // Apps are the cluster's: every node serves each, its module fetched by digest from a peer (apps-cluster.ts).
  const appsCluster =
    etcdNodes && blobPeers ? new AppsCluster(etcdNodes.client, apps, blobs, blobPeers, opts.dataDir) : undefined;
  if (appsCluster) {
    await appsCluster.start();
    onFailure(() => appsCluster.close());
  }
  // …and an image it lacks (for a sandbox, run or job placed here) from a node that has it.
  if (nodes.clustered) {
    const images = new ImagePeers(nodes, (input) => engine.importImage(input));
    engine.fetchImagesFrom((image) => images.fetch(image));
  }
  // Jobs start after the engine recovered: a run lost to a crash is retried in a fresh sandbox.
  // In a cluster, jobs are kept in etcd and placed by the cluster's scheduler (see job-dispatch.ts).
  let clusterRuns: ClusterRuns | undefined;
  const etcdJobs = etcdNodes ? { nodes: etcdNodes, store: new EtcdJobStore(etcdNodes.client) } : undefined;
  // One view of the blob store for the jobs and, in a cluster, the attempts run here.
  const forJobs = jobBlobs(blobs, blobPeers);
  const jobs = new Jobs(engine, etcdJobs?.store ?? store, forJobs, {
    dataDir: opts.dataDir,
    ...(etcdJobs
      ? {
          cluster: {
            dispatch: (logs) =>
              (clusterRuns = new ClusterRuns(etcdJobs.nodes, etcdJobs.store, engine, forJobs, logs, blobs, 1000)),
            refuse: (spec) => (clusterRuns as ClusterRuns).refuse(spec),
          },
        }
      : {}),
    ...(opts.maxJobs ? { maxRunning: opts.maxJobs } : {}),
    ...(opts.maxJobLogBytes ? { maxLogBytes: opts.maxJobLogBytes } : {}),
    tags: async () => (await nodes.get(nodes.selfId)).tags,
  });
  await jobs.start();
  onFailure(() => jobs.close());
  const upgrades = new Upgrades({
    engine,
    nodes,
    manifests,
    blobs,
    blobPeers,
    dataDir: opts.dataDir,
    root: opts.installRoot ?? join(opts.dataDir, 'releases'),
    etcd: etcdNodes?.client,
  });
  onFailure(() => upgrades.close());
  const metrics = opts.metrics === false ? null : startMetrics(opts, engine, etcdJobs?.store ?? store, store);
  if (metrics) onFailure(() => closeMetrics(metrics));
  const daemonWarnings = warnings({
    host,
    anonymous: opts.anonymous ?? [],
    allowPrivate: opts.allowPrivate ?? [],
    imageDirs: opts.imageDirs ?? [],
    hostNames: opts.hostNames ?? [],
    corsOrigins: opts.corsOrigins ?? [],
    uidOverlaps: engine.hostIds.overlaps(),
    gatewayHost: gatewayAt?.host,
    metricsHost: metricsAt?.host,
    metricsPublic: opts.metricsPublic === true,
  });
  /** The gateway once it listens (peers relay requests to it through the API). */
  const started: { gateway?: Gateway | null } = {};
  const { app, injectWebSocket, closeWebSockets } = createApp(engine, {
    tokens,
    store,
    apps,
    services,
    manifests,
    upgrades,
    blobs,
    ...(blobPeers ? { blobPeers } : {}),
    jobs,
    nodes,
    // Peers send the advertised name as Host: it names this daemon.
    browser: {
      hostNames: [...(opts.hostNames ?? []), ...(opts.advertise ? [new URL(opts.advertise).host] : [])],
      corsOrigins: opts.corsOrigins ?? [],
    },
    anonymous: new Set(opts.anonymous ?? []),
    metrics: { parts: metrics, public: opts.metricsPublic === true },
    warnings: daemonWarnings,
    preview: { links: previewLinks, urls: preview },
    gatewayRelay: () => started.gateway ?? undefined,
    tracing: stopTracing !== null,
    logs,
    self: (as: Principal) => {
      if (!own.url) throw new Error('the daemon is not listening yet');
      let c = own.clients.get(as.id);
      if (!c)
        own.clients.set(
          as.id,
          (c = new Client({ url: own.url, token: tokens.internalFor(as.id), ...(peerCa ? { ca: peerCa } : {}) })),
        );
      return c;
    },
  });
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = tls
      ? serve(
          {
            fetch: app.fetch,
            hostname: host,
            port,
            createServer: createHttpsServer,
            serverOptions: { ServerResponse: BodilessResponse, cert: tls.cert, key: tls.key },
          },
          () => resolve(s),
        )
      : serve({ fetch: app.fetch, hostname: host, port, serverOptions: { ServerResponse: BodilessResponse } }, () => resolve(s));
    s.once('error', reject);
  });
  onFailure(() => server.close());
  injectWebSocket(server as HttpServer);
  const unix = await listenUnix(socketPath, app);
  onFailure(() => {
    unix.close();
    rmSync(socketPath, { force: true });
  });
  injectWebSocket(unix);
  const gateway: Gateway | null = gatewayAt
    ? await startGateway(engine, apps, gatewayAt.host, gatewayAt.port, { services, preview, relay })
    : null;
  if (gateway) onFailure(() => gateway.close());
  started.gateway = gateway;
  await services.start();
  const publicListener: PublicListener | null =
    publicAt && preview ? await startPublicListener(preview, publicAt.host, publicAt.port, services) : null;
  if (publicListener) onFailure(() => publicListener.close());
  // Preview URLs name the port they are served on: the public listener's, else the gateway's.
  if (preview) preview.port = publicListener?.port ?? Number(new URL(gateway?.url ?? 'http://x:0').port);
  const addr = server.address() as AddressInfo;
  const url = `${tls ? 'https' : 'http'}://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
  own.url = url.replace('//0.0.0.0:', '//127.0.0.1:').replace('//[::]:', '//[::1]:');
  // With TLS the MCP tools call this daemon where its certificate says it is: --advertise.
  if (tls && opts.advertise) own.url = opts.advertise;
  const metricsListener =
    metrics && metricsAt
      ? await startMetricsListener(metrics.metrics, metricsAt.host, metricsAt.port, opts.hostNames ?? [])
      : null;
  if (metricsListener) onFailure(() => metricsListener.close());
  await nodes.start?.();
  // Joined: run what the scheduler places here, and campaign to be it.
  if (clusterRuns) {
    onFailure(() => clusterRuns?.close());
    await clusterRuns.join(jobs);
    // The services' placement is the scheduler's too: whichever node leads places replicas.
    services.cluster?.join(clusterRuns);
  }
  // A release just handed over to checks its health here (a failure fails the start: rolled back).
  await upgrades.start(own.url);
  const pidFile = join(opts.dataDir, 'daemon.json');
  writeFileSync(pidFile, JSON.stringify({ pid: process.pid, url, socket: socketPath }), { mode: 0o600 });
  chmodSync(pidFile, 0o600); // one a crash left behind was made 0644 by an older realm
  if (recovered.running || recovered.stopped || recovered.removed) {
    log.info(
      `recovered ${recovered.running} running and ${recovered.stopped} stopped sandboxes, cleaned up ${recovered.removed} leftovers`,
    );
  }
  return {
    url,
    gatewayUrl: gateway?.url ?? null,
    metricsUrl: metricsListener?.url ?? null,
    publicUrl: publicListener?.url ?? null,
    tracing: tracingState().endpoint ?? null,
    warnings: daemonWarnings,
    socket: socketPath,
    engine,
    blobs,
    app,
    nodes,
    upgrades,
    close: async () => {
      await upgrades.close();
      // Job attempts here end first (reported lost once the lease goes, and retried elsewhere per
      // their policy); then leave the cluster: the others stop sending work here at once.
      await clusterRuns?.close();
      await appsCluster?.close();
      await nodes.close();
      // Stop accepting, then end every connection (idle keep-alives, half-read uploads).
      const closed = Promise.all([server, unix].map((s) => new Promise<void>((r) => s.close(() => r()))));
      (server as HttpServer).closeAllConnections();
      unix.closeAllConnections();
      closeWebSockets();
      await Promise.all([closed, gateway?.close(), metricsListener?.close(), publicListener?.close()]);
      if (metrics) closeMetrics(metrics);
      await services.close();
      await manifests.close();
      preview?.close();
      rmSync(socketPath, { force: true });
      await jobs.close();
      await blobs.close();
      await engine.close();
      await stopEgress(opts.cgroupRoot ?? 'realm');
      releasePeerCa();
      store.close();
      rmSync(pidFile, { force: true });
      await stopTracing?.();
      await logs.close();
    },
  };
}

/** `--metrics HOST:PORT` (a bare port: loopback); refused with --no-metrics. */
function parseMetricsListen(text: string, on: boolean | undefined): { host: string; port: number } {
  if (on === false) throw new Error(`--metrics ${text} serves metrics, which --no-metrics turns off: leave one out`);
  try {
    return parseListen(text);
  } catch {
    throw new Error(`--metrics ${text}: write host:port or a port (e.g. 127.0.0.1:9920 or 9920)`);
  }
}

/** The metrics and their history, reading the engine, the job store and the blob index. */
function startMetrics(
  opts: DaemonOptions,
  engine: Engine,
  jobs: { listJobRuns(): Promise<{ state: string }[]> },
  store: SqliteStore,
): NonNullable<MetricsParts> {
  const cgroupRoot = opts.cgroupRoot ?? 'realm';
  const blobTotals = store.database.prepare<[], { count: number; bytes: number }>(
    'SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM blobs',
  );
  const metrics = new Metrics({
    sandboxes: async () =>
      (await engine.listSandboxes()).map((s) => ({
        id: s.id,
        status: s.status,
        driver: s.driver,
        cgroup: `${cgroupRoot}/${s.id}`,
      })),
    warmReady: () => engine.warmReady(),
    jobRuns: () => jobs.listJobRuns(),
    blobs: () => blobTotals.get() ?? { count: 0, bytes: 0 },
    cgroupRoot,
  });
  return { metrics, history: new History(metrics, opts.metricsIntervalMs) };
}

function closeMetrics(m: NonNullable<MetricsParts>): void {
  m.history.close();
  m.metrics.close();
}
