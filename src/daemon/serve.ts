/** Start the daemon: open the store, build the engine, recover sandboxes, listen. */
import { availableParallelism } from 'node:os';
import { chmodSync, mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import { Client } from '@realm/sdk';
import { checkImageDirs } from '../engine/image-dirs.js';
import { claimDaemon } from './claim.js';
import { DEFAULT_GATEWAY, defaultSocketPath, parseGateway, parseListen } from '../config.js';
import { Apps } from '../gateway/apps.js';
import { Services } from '../services/services.js';
import { Manifests } from '../services/manifest.js';
import { type Gateway, startGateway } from '../gateway/server.js';
import { DEFAULT_PREVIEW_DOMAIN, Preview } from '../gateway/preview.js';
import { PreviewLinks } from '../gateway/preview-links.js';
import { type PublicListener, startPublicListener } from '../gateway/preview-listen.js';
import { GatewayRelay } from '../gateway/relay.js';
import { stopEgress } from '../net/egress.js';
import { createApp } from './app.js';
import { warnings } from './posture.js';
import { Tokens } from './auth.js';
import { BodilessResponse } from './hygiene.js';
import { listenUnix } from './listen-unix.js';
import { loadListenTls } from './listen-tls.js';
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
import { etcdClient } from '../cluster/etcd.js';
import { nodeId } from '../cluster/node-id.js';
import { nodeReport } from '../cluster/report.js';
import { startMetricsListener } from './routes/metrics.js';
import { startTracing, tracingState } from '../telemetry/trace.js';
import { VERSION } from '../version.js';
import { DaemonLogs } from '../logs/logger.js';
import type { Daemon, DaemonOptions } from './daemon-options.js';
import { startEngine } from './start-engine.js';
import { closeMetrics, parseMetricsListen, startMetrics } from './metrics-parts.js';

export type { Daemon, DaemonOptions } from './daemon-options.js';
import { log } from '../logs/log.js';
import { Upgrades } from '../upgrade/upgrades.js';

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
  const { store, engine, recovered } = await startEngine(opts, logs, onFailure);
  const tokens = new Tokens(store, join(opts.dataDir, 'admin-token'));
  const apps = new Apps(engine, store, opts.dataDir);
  // Clients of our own API for the MCP tools, one per principal they act as; the URL is known once we listen.
  const own: { url?: string; clients: Map<string, Client> } = { clients: new Map() };
  const startedAt = new Date().toISOString();
  const address = (): string => opts.advertise ?? own.url ?? '';
  const jobSlots = opts.maxJobs ?? Math.max(1, availableParallelism());
  const selfId = nodeId(opts.dataDir, opts.nodeId);
  // The cluster's nodes, made here (services keep their desired state in its etcd), joined once the API listens.
  const report = (): Promise<NodeReport> =>
    nodeReport(engine, startedAt, jobSlots, opts.cluster ? (opts.leaseTtl ?? 4) * 1000 : undefined);
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
