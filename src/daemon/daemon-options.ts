/** What `startDaemon` (serve.ts) takes and gives back. */
import type { Hono } from 'hono';
import type { Engine } from '../engine/engine.js';
import type { UidRange } from '../engine/host-ids.js';
import type { DriverName } from '../drivers/driver.js';
import type { AnonymousGroup } from './access.js';
import type { TlsFiles } from './listen-tls.js';
import type { BlobStore } from '../blobs/store.js';
import type { Nodes } from '../cluster/types.js';
import type { EtcdTls } from '../cluster/etcd.js';
import type { LogOptions } from '../logs/logger.js';
import type { Upgrades } from '../upgrade/upgrades.js';

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

/** REALM_PROXY_HOSTS="name=ip,…": names the network proxies resolve to fixed addresses. */
export function pinnedFromEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (process.env.REALM_PROXY_HOSTS ?? '').split(',')) {
    const [name, ip] = pair.split('=').map((x) => x.trim());
    if (name && ip) out[name.toLowerCase()] = ip;
  }
  return out;
}
