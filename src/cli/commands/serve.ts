import type { Command } from 'commander';
import { DEFAULT_GATEWAY, DEFAULT_LISTEN, defaultDataDir, defaultSocketPath } from '../../config.js';
import type { AnonymousGroup } from '../../daemon/access.js';
import { action } from '../action.js';
import { parseDuration, parseSize } from '../../util/units.js';
import { RealmError } from '../../util/errors.js';
import { formatCidr, parseCidr } from '../../net/addresses.js';
import { DEFAULT_UID_RANGE, parseUidRange } from '../../engine/host-ids.js';

/** A repeatable option: each use adds one value (the env default is a comma-separated list). */
const more = (v: string, prev: string[]): string[] => [...prev, v];
const list = (env: string | undefined): string[] =>
  (env ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the realm daemon (HTTP API) in the foreground')
    .option(
      '--listen <host:port>',
      'TCP address to listen on; every request there wants a token (REALM_LISTEN)',
      process.env.REALM_LISTEN ?? DEFAULT_LISTEN,
    )
    .option('--socket <path>', 'unix socket for local users, each served as its own uid (REALM_SOCKET)', defaultSocketPath())
    .option(
      '--anonymous <groups>',
      `route groups TCP callers may use without a token, comma-separated; only runs for now (POST /v1/runs, GET /v1/languages, the Piston and REPL routes) (REALM_ANONYMOUS)`,
      process.env.REALM_ANONYMOUS ?? '',
    )
    .option(
      '--gateway <host:port|off>',
      'where the app gateway serves pushed apps (realm push) at /NAME/…; beyond loopback it serves only apps pushed with --visibility public (REALM_GATEWAY)',
      process.env.REALM_GATEWAY ?? DEFAULT_GATEWAY,
    )
    .option(
      '--preview-domain <domain>',
      'preview URLs of sandbox ports are http://<port>-<sandbox>.<domain>/ on the gateway (REALM_PREVIEW_DOMAIN)',
      process.env.REALM_PREVIEW_DOMAIN ?? 'realm.localhost',
    )
    .option(
      '--public-listen <host:port>',
      'a listener that serves preview URLs and public services by Host (NAME.<preview domain>) only, never the API, apps nor local services',
    )
    .option('--data-dir <dir>', 'state directory (REALM_DATA_DIR)', defaultDataDir())
    .option(
      '--install-root <dir>',
      'where `realm upgrade` installs releases: versions/N/ and the current link (default <data-dir>/releases)',
    )
    .option('--max-sandboxes <n>', 'most live sandboxes at once', '1000')
    .option('--max-runs <n>', 'most one-shot runs at once (more get 429)', '64')
    // Tokens are always wanted on TCP now; --auth (and REALM_AUTH) is accepted for old scripts and changes nothing.
    .option('--auth', 'no effect: a token is always wanted on TCP (kept for old scripts)')
    .option('--warm <n>', 'sandboxes kept ready per shape for creates and runs (0: off)', '2')
    .option(
      '--warm-max <n>',
      'most sandboxes a busy shape keeps ready; demand raises a shape from --warm up to this (default 4 × --warm)',
    )
    .option(
      '--host-name <name>',
      'a name (or address), with an optional :port, that clients and proxies reach the daemon by besides its listen address; repeatable (REALM_HOST_NAMES)',
      more,
      list(process.env.REALM_HOST_NAMES),
    )
    .option(
      '--cors-origin <origin>',
      'a web origin (scheme://host[:port]) whose pages may call the API from a browser; repeatable (REALM_CORS_ORIGINS)',
      more,
      list(process.env.REALM_CORS_ORIGINS),
    )
    .option(
      '--max-layer-size <size>',
      'largest image layer accepted, compressed or unpacked (REALM_MAX_LAYER_SIZE)',
      process.env.REALM_MAX_LAYER_SIZE ?? '8g',
    )
    .option(
      '--allow-private <cidr>',
      'let sandboxes (network all and allow-lists) reach this private, link-local or host range; repeatable (REALM_ALLOW_PRIVATE, comma-separated)',
      more,
      list(process.env.REALM_ALLOW_PRIVATE),
    )
    .option(
      '--uid-range <first:count>',
      "host uids sandboxes run as, one each (and one more for each microvm VMM); the first two are realm's own (REALM_UID_RANGE)",
      process.env.REALM_UID_RANGE ?? `${DEFAULT_UID_RANGE.first}:${DEFAULT_UID_RANGE.count}`,
    )
    .option(
      '--image-dir <dir>',
      'a host directory whose subdirectories may be sandbox images (repeatable; never / or one holding the data dir; REALM_IMAGE_DIRS, colon-separated)',
      more,
      (process.env.REALM_IMAGE_DIRS ?? '').split(':').filter(Boolean),
    )
    .option('--max-jobs <n>', "most job runs at once (default: this node's cpus); the others wait in the queue")
    .option(
      '--max-job-logs <size>',
      "most bytes of job logs kept, all jobs together; past it the oldest ended runs' logs are dropped (REALM_MAX_JOB_LOGS)",
      process.env.REALM_MAX_JOB_LOGS ?? '4g',
    )
    .option(
      '--blob-grace <duration>',
      'how long an unpinned, unreferenced blob is kept before GC takes it (REALM_BLOB_GRACE)',
      process.env.REALM_BLOB_GRACE ?? '1h',
    )
    .option(
      '--cluster <etcd://host:port,…>',
      'join the cluster kept in these etcd members (etcds:// for TLS); without it the node works alone (REALM_CLUSTER)',
      process.env.REALM_CLUSTER,
    )
    .option(
      '--tag <tag>',
      'a tag of this node that work can ask for, e.g. gpu or zone=eu-1; repeatable (REALM_TAGS)',
      more,
      list(process.env.REALM_TAGS),
    )
    .option(
      '--advertise <url>',
      "where other nodes reach this node's API (default: its listen address) (REALM_ADVERTISE)",
      process.env.REALM_ADVERTISE,
    )
    .option(
      '--join <token>',
      'an invite from `realm cluster invite`: wanted the first time this node joins a cluster that has members (REALM_JOIN)',
      process.env.REALM_JOIN,
    )
    .option('--node-id <id>', "this node's id in the cluster (default: made once and kept in the data dir)")
    .option('--lease-ttl <seconds>', 'the cluster lease: a node that stops answering is down after this long', '4')
    .option(
      '--tls-cert <file>',
      "listen with TLS (https://, wss://): the API's certificate, PEM, intermediates after it; with --tls-key (REALM_TLS_CERT)",
      process.env.REALM_TLS_CERT,
    )
    .option('--tls-key <file>', "the --tls-cert certificate's private key, PEM (REALM_TLS_KEY)", process.env.REALM_TLS_KEY)
    .option(
      '--peer-ca <file>',
      "the CA that signed the other nodes' --tls-cert: https:// peers are verified against it alone (default: the system's CAs and NODE_EXTRA_CA_CERTS) (REALM_PEER_CA)",
      process.env.REALM_PEER_CA,
    )
    .option(
      '--metrics <host:port>',
      'also serve GET /metrics (Prometheus) here, without a token, for a scraper (a bare port: loopback)',
    )
    .option('--no-metrics', 'serve no metrics (GET /metrics and /v1/metrics/history answer METRICS_OFF)')
    .option('--metrics-public', 'GET /metrics on the API answers without a token (default: the admin token)')
    .option(
      '--otlp-endpoint <url>',
      'export OpenTelemetry traces of API requests, the engine and the drivers by OTLP/HTTP to this collector (spans go to <url>/v1/traces); default OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, else off',
    )
    .option(
      '--log-level <level>',
      'the least level logged: debug (every API request too), info, warn, error (REALM_LOG_LEVEL)',
      process.env.REALM_LOG_LEVEL ?? 'info',
    )
    .option(
      '--log-format <text|json>',
      "stderr's form: text (one concise line each) or json (as the file) (REALM_LOG_FORMAT)",
      process.env.REALM_LOG_FORMAT ?? 'text',
    )
    .option('--log-file-size <size>', 'the log file (<data-dir>/logs/realm.log) is rotated at this size', '10m')
    .option('--log-files <n>', 'rotated log files kept besides the current one (realm.log.1 … realm.log.N)', '5')
    .option('--etcd-ca <file>', 'CA of the etcd members (etcds://)')
    .option('--etcd-cert <file>', "this node's client certificate for etcd (etcds://)")
    .option('--etcd-key <file>', "this node's client key for etcd (etcds://)")
    .action(
      action(
        async (f: {
          cluster?: string;
          tag: string[];
          advertise?: string;
          nodeId?: string;
          join?: string;
          leaseTtl: string;
          tlsCert?: string;
          tlsKey?: string;
          peerCa?: string;
          etcdCa?: string;
          etcdCert?: string;
          etcdKey?: string;
          /** A listener's address, or false for --no-metrics. */
          metrics?: string | false;
          metricsPublic?: boolean;
          otlpEndpoint?: string;
          logLevel: string;
          logFormat: string;
          logFileSize: string;
          logFiles: string;
          maxJobs?: string;
          maxJobLogs: string;
          blobGrace: string;
          listen: string;
          gateway: string;
          previewDomain: string;
          publicListen?: string;
          dataDir: string;
          installRoot?: string;
          maxSandboxes: string;
          maxRuns: string;
          warm: string;
          warmMax?: string;
          socket: string;
          anonymous: string;
          maxLayerSize: string;
          hostName: string[];
          corsOrigin: string[];
          allowPrivate: string[];
          imageDir: string[];
          uidRange: string;
        }) => {
          const count = (flag: string, v: string): number => {
            if (!/^\d+$/.test(v))
              throw new RealmError('INVALID_REQUEST', `${flag} ${v}: write a whole number such as 2 (0 turns warm pools off)`);
            return Number(v);
          };
          const blobGraceMs = parseDuration(f.blobGrace);
          if (blobGraceMs === null)
            throw new RealmError('INVALID_REQUEST', `--blob-grace ${f.blobGrace}: write a duration such as 1h, 30m or 0s`);
          const maxJobLogBytes = parseSize(f.maxJobLogs);
          if (!maxJobLogBytes)
            throw new RealmError('INVALID_REQUEST', `--max-job-logs ${f.maxJobLogs}: write a size such as 4g or 512m`);
          if (!['debug', 'info', 'warn', 'error'].includes(f.logLevel))
            throw new RealmError('INVALID_REQUEST', `--log-level ${f.logLevel}: write debug, info, warn or error`);
          if (f.logFormat !== 'text' && f.logFormat !== 'json')
            throw new RealmError('INVALID_REQUEST', `--log-format ${f.logFormat}: write text or json`);
          const logFileBytes = parseSize(f.logFileSize);
          if (!logFileBytes || logFileBytes < 4096)
            throw new RealmError('INVALID_REQUEST', `--log-file-size ${f.logFileSize}: write a size of 4k or more, such as 10m`);
          const logFiles = count('--log-files', f.logFiles);
          if (logFiles < 1 || logFiles > 1000)
            throw new RealmError('INVALID_REQUEST', `--log-files ${f.logFiles}: write a whole number from 1 to 1000`);
          const maxLayerBytes = parseSize(f.maxLayerSize);
          if (!maxLayerBytes)
            throw new RealmError('INVALID_REQUEST', `--max-layer-size ${f.maxLayerSize}: write a size such as 2g or 512m`);
          // The whole daemon loads only for this command: every other command starts faster for it.
          const [{ startDaemon }, { parseCorsOrigin, parseHostName }, { ANONYMOUS_GROUPS }] = await Promise.all([
            import('../../daemon/serve.js'),
            import('../../daemon/browser-guard.js'),
            import('../../daemon/access.js'),
          ]);
          const anonymous = f.anonymous
            .split(',')
            .map((g) => g.trim())
            .filter(Boolean);
          for (const g of anonymous) {
            if (!(ANONYMOUS_GROUPS as readonly string[]).includes(g))
              throw new RealmError(
                'INVALID_REQUEST',
                `--anonymous ${g}: the groups that can be opened are ${ANONYMOUS_GROUPS.join(', ')}`,
              );
          }
          for (const name of f.hostName) parseHostName(name);
          for (const origin of f.corsOrigin) parseCorsOrigin(origin);
          const leaseTtl = count('--lease-ttl', f.leaseTtl);
          if (leaseTtl < 2 || leaseTtl > 300)
            throw new RealmError('INVALID_REQUEST', `--lease-ttl ${f.leaseTtl}: write whole seconds from 2 to 300 (default 4)`);
          if (f.advertise !== undefined && !/^https?:\/\/[^/]+$/.test(f.advertise))
            throw new RealmError('INVALID_REQUEST', `--advertise ${f.advertise}: write the API's URL, e.g. http://10.0.0.2:7070`);
          if ((f.etcdCa || f.etcdCert || f.etcdKey) && !f.cluster)
            throw new RealmError('INVALID_REQUEST', '--etcd-ca/--etcd-cert/--etcd-key are for --cluster etcds://…');
          if ((f.etcdCert || f.etcdKey) && !f.etcdCa)
            throw new RealmError(
              'INVALID_REQUEST',
              "--etcd-cert/--etcd-key want --etcd-ca (the CA of the etcd members' certificates)",
            );
          if (!f.tlsCert !== !f.tlsKey)
            throw new RealmError(
              'INVALID_REQUEST',
              '--tls-cert and --tls-key go together: give both (a certificate and its key) or neither',
            );
          if (f.tlsCert && f.advertise?.startsWith('http:'))
            throw new RealmError(
              'INVALID_REQUEST',
              `--advertise ${f.advertise}: this node listens with TLS (--tls-cert), so peers must dial https://; write --advertise https://…`,
            );
          if (!f.tlsCert && f.advertise?.startsWith('https:'))
            throw new RealmError('INVALID_REQUEST', `--advertise ${f.advertise}: https:// wants --tls-cert and --tls-key`);
          const tls = f.tlsCert && f.tlsKey ? { cert: f.tlsCert, key: f.tlsKey } : undefined;
          // Read (and the pair checked) before the daemon starts anything, as the etcd files are.
          if (tls) (await import('../../daemon/listen-tls.js')).loadListenTls(tls);
          if (f.peerCa) (await import('../../util/pem.js')).readPem('--peer-ca', f.peerCa);
          // A collector URL that cannot be used stops the start here, before anything runs.
          try {
            (await import('../../telemetry/trace.js')).tracesUrl(f.otlpEndpoint);
          } catch (e) {
            throw new RealmError('INVALID_REQUEST', (e as Error).message);
          }
          const etcdTls = f.etcdCa ? { ca: f.etcdCa, cert: f.etcdCert, key: f.etcdKey } : undefined;
          // Checked (and the PEM files read) before the daemon starts anything.
          if (f.cluster) (await import('../../cluster/etcd.js')).etcdOptions(f.cluster, etcdTls);
          const d = await startDaemon({
            ...(f.cluster ? { cluster: f.cluster } : {}),
            ...(etcdTls ? { etcdTls } : {}),
            tags: f.tag,
            ...(f.advertise ? { advertise: f.advertise } : {}),
            ...(tls ? { tls } : {}),
            ...(f.peerCa ? { peerCa: f.peerCa } : {}),
            ...(f.nodeId ? { nodeId: f.nodeId } : {}),
            ...(f.join ? { join: f.join } : {}),
            leaseTtl,
            listen: f.listen,
            gateway: f.gateway,
            previewDomain: f.previewDomain,
            ...(f.publicListen ? { publicListen: f.publicListen } : {}),
            dataDir: f.dataDir,
            ...(f.installRoot ? { installRoot: f.installRoot } : {}),
            uidRange: parseUidRange(f.uidRange),
            maxSandboxes: Number(f.maxSandboxes) || 1000,
            maxRuns: Number(f.maxRuns) || 64,
            ...(f.maxJobs !== undefined ? { maxJobs: count('--max-jobs', f.maxJobs) || 1 } : {}),
            maxJobLogBytes,
            warm: count('--warm', f.warm),
            ...(f.warmMax !== undefined ? { warmMax: count('--warm-max', f.warmMax) } : {}),
            cgroupRoot: process.env.REALM_CGROUP_ROOT ?? 'realm',
            socket: f.socket,
            anonymous: anonymous as AnonymousGroup[],
            maxLayerBytes,
            hostNames: f.hostName,
            corsOrigins: f.corsOrigin,
            allowPrivate: f.allowPrivate.map((c) => formatCidr(parseCidr(c))),
            imageDirs: f.imageDir,
            blobGraceMs,
            metrics: f.metrics !== false,
            ...(typeof f.metrics === 'string' ? { metricsListen: f.metrics } : {}),
            ...(f.metricsPublic ? { metricsPublic: true } : {}),
            ...(f.otlpEndpoint ? { otlpEndpoint: f.otlpEndpoint } : {}),
            log: {
              level: f.logLevel as 'debug' | 'info' | 'warn' | 'error',
              format: f.logFormat,
              maxFileBytes: logFileBytes,
              files: logFiles,
            },
          });
          // Loaded now (no earlier: other commands start without it); the daemon's logger is attached.
          const { log } = await import('../../logs/log.js');
          log.info(
            `daemon listening on ${d.url} (tokens wanted${anonymous.length ? `; open without one: ${anonymous.join(', ')}` : ''}) and ${d.socket} (local users as themselves) (data in ${f.dataDir})`,
          );
          if (d.gatewayUrl) log.info(`app gateway on ${d.gatewayUrl}`);
          if (d.metricsUrl) log.info(`metrics on ${d.metricsUrl}/metrics`);
          if (d.tracing) log.info(`traces exported by OTLP to ${d.tracing}`);
          if (d.publicUrl) log.info(`preview URLs (only) on ${d.publicUrl}`);
          if (f.cluster) log.info(`node ${d.nodes.selfId} joined the cluster at ${f.cluster}`, { node: d.nodes.selfId });
          for (const w of d.warnings) log.warn(w);
          // `realm upgrade`: this process hands the daemon over to the new release (upgrade/handover.ts).
          const { handOver } = await import('../../upgrade/handover.js');
          // One close, whoever asks first: a SIGTERM during a hand-over does not close the daemon twice.
          let closing: Promise<void> | undefined;
          const close = (): Promise<void> => (closing ??= d.close());
          d.upgrades.handOver = (h) => handOver({ root: d.upgrades.root, dataDir: f.dataDir, state: d.upgrades.state, close }, h);
          const stop = (): void => {
            void close().then(() => process.exit(0));
          };
          process.once('SIGTERM', stop);
          process.once('SIGINT', stop);
        },
      ),
    );
}
