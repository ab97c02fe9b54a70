/**
 * Upgrading realm itself (`realm upgrade`): a release tarball, uploaded as a blob, and a
 * statement the owner signed naming it by digest. The node the request reaches checks the
 * signature and the key, and refuses at once a target that runs that release or a higher one or
 * is of another platform. Then each target acts on its own: alone, the node itself; in a cluster,
 * each target watches its key under `upgrades/want/` in etcd. A target checks everything again
 * (it trusts no other node), fetches the blob by digest (from a peer if it lacks it), installs
 * the release beside the others and hands the daemon over to it (handover.ts). What each node is
 * at goes to its `upgrades/status/` key (alone: its state file), which `GET /v1/upgrades` lists.
 */
import { randomUUID } from 'node:crypto';
import { realpathSync } from 'node:fs';
import type { Etcd3 } from 'etcd3';
import type { BlobStore } from '../blobs/store.js';
import type { PeerBlobs } from '../cluster/blob-peers.js';
import { PREFIX, answered } from '../cluster/etcd.js';
import { LastingWatch } from '../cluster/lasting-watch.js';
import { PLATFORM } from '../cluster/report.js';
import type { Nodes, NodeView } from '../cluster/types.js';
import type { Engine } from '../engine/engine.js';
import { ROOT_OWNER } from '../engine/owner.js';
import { log } from '../logs/log.js';
import type { Manifests } from '../services/manifest.js';
import { fingerprint, parsePublicKey, verifyPayload } from '../signing/keys.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { PACKAGE_ROOT } from '../util/paths.js';
import { MAIN_IN_TREE, installRelease, readCurrent } from './install.js';
import { type PostUpgrade, type ReleaseStatement, parseStatement } from './statement.js';
import { FINAL_PHASES, type Handover, type UpgradeOutcome, type UpgradePhase, UpgradeStateFile } from './state.js';
import { join } from 'node:path';

const WANT = `${PREFIX}upgrades/want/`;
/** What a target is asked: the signed statement, and the request's id its outcome will carry. */
interface Want {
  statement: Record<string, unknown>;
  signature: string;
  request?: unknown;
}
const STATUS = `${PREFIX}upgrades/status/`;
const CALL_MS = 3000;

/** One node's upgrade status, as `GET /v1/upgrades` lists it. */
export interface NodeUpgradeStatus {
  node: string;
  /** The release it runs (0: the one it was installed with). */
  version: number;
  platform: string;
  last: UpgradeOutcome | null;
}

export interface UpgradesOptions {
  engine: Engine;
  nodes: Nodes;
  manifests: Manifests;
  blobs: BlobStore;
  blobPeers?: PeerBlobs | undefined;
  dataDir: string;
  /** Where releases are installed: `versions/N/` and the `current` link. */
  root: string;
  etcd?: Etcd3 | undefined;
}

export class Upgrades {
  readonly state: UpgradeStateFile;
  /** Set by `realm serve` once the daemon runs: hand it over to a new release. Absent: a daemon in-process cannot. */
  handOver?: (h: Handover) => Promise<never>;
  private watch: LastingWatch | undefined;
  private busy = false;
  /** A request that came while another was under way: acted on after it. */
  private queued: string | undefined;
  private closed = false;

  constructor(private readonly o: UpgradesOptions) {
    this.state = new UpgradeStateFile(o.dataDir);
  }

  get root(): string {
    return this.o.root;
  }

  /**
   * After the daemon listens: a new release checks its own health here (the hand-over waits for
   * `succeeded`), the node's status is published, and requests for this node are watched for.
   */
  async start(selfUrl: string): Promise<void> {
    const s = this.state.get();
    if (s.handover && sameDir(PACKAGE_ROOT, s.handover.tree)) await this.healthCheck(selfUrl, s.handover.version);
    else if (s.last && !FINAL_PHASES.includes(s.last.phase)) {
      // This node stopped (or crashed) in the middle of one: nothing was switched; it is not taken up
      // again by itself (it may be what stopped the daemon), a new request is.
      const v = s.last.version;
      this.state.update((x) => {
        x.handover = null;
      });
      this.state.outcome(
        v,
        'failed',
        `the daemon stopped while release ${v} was ${s.last.phase}; ask again with realm upgrade`,
        'UPGRADE_INTERRUPTED',
      );
    } else if (s.unannounced && s.last) {
      // The release this node went back to says what became of the one it tried.
      this.event(s.last.phase, s.last.version, s.last.message, s.last.code);
      this.state.update((x) => delete x.unannounced);
    }
    await this.publish();
    const etcd = this.o.etcd;
    if (!etcd) return;
    const key = WANT + this.o.nodes.selfId;
    const reread = async (): Promise<string> => {
      const res = await answered(etcd.get(key).exec(), CALL_MS, 'reading upgrades');
      const now = res.kvs[0]?.value.toString();
      if (now) this.wanted(now);
      return res.header.revision;
    };
    this.watch = new LastingWatch(
      'upgrades',
      () => etcd.watch().key(key),
      (w) => w.on('put', (kv) => this.wanted(kv.value.toString())),
      reread,
    );
    await this.watch.start(await reread());
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
  }

  /** The new release's own check: its API answers and the engine has a driver; else the start fails and the hand-over rolls back. */
  private async healthCheck(selfUrl: string, version: number): Promise<void> {
    const res = await fetch(new URL('/v1/health', selfUrl)).catch((e: unknown) => {
      throw new Error(`release ${version}: its API does not answer (${errorMessage(e)})`);
    });
    if (!res.ok) throw new Error(`release ${version}: its API answers ${res.status} to /v1/health`);
    const drivers = (await this.o.engine.fingerprint()).filter((d) => d.available);
    if (!drivers.length) throw new Error(`release ${version}: no driver is available on this host`);
    this.state.update((st) => {
      st.version = version;
      st.handover = null;
      st.last = {
        version,
        phase: 'succeeded',
        message: `running release ${version} (drivers ${drivers.map((d) => d.name).join(', ')})`,
        at: new Date().toISOString(),
        ...(st.request ? { request: st.request } : {}),
      };
    });
    this.event('succeeded', version, `running release ${version}`);
  }

  /** `POST /v1/upgrades`: check, then ask each target; returns the targets. */
  async post(body: PostUpgrade): Promise<{ version: number; digest: string; nodes: string[]; request: string }> {
    const st = await this.verify(body);
    this.o.blobs.info(st.digest, ROOT_OWNER); // BLOB_NOT_FOUND: upload it first (realm upgrade does)
    const targets = await this.targets(body);
    const statuses = new Map((await this.status()).map((s) => [s.node, s]));
    for (const n of targets) {
      const last = statuses.get(n.id)?.last;
      if (last && !FINAL_PHASES.includes(last.phase))
        throw new RealmError(
          'UPGRADE_BUSY',
          `node ${n.id} is ${last.phase} release ${last.version}; wait for its outcome (realm upgrade status), then ask again`,
        );
      const at = statuses.get(n.id)?.version ?? 0;
      if (st.version <= at) throw downgrade(n.id, st.version, at);
      const platform = n.report?.platform ?? statuses.get(n.id)?.platform;
      if (platform && platform !== st.platform) throw platformError(n.id, st.platform, platform);
    }
    if (!this.handOver && targets.some((n) => n.id === this.o.nodes.selfId))
      throw new RealmError(
        'UPGRADE_UNSUPPORTED',
        'this daemon runs inside another program (not `realm serve`), which it cannot restart; upgrade the program that embeds it',
      );
    const request = randomUUID();
    const want = JSON.stringify({ statement: body.statement, signature: body.signature, request });
    if (this.o.etcd) {
      const etcd = this.o.etcd;
      await answered(
        Promise.all(
          targets.map((n) =>
            etcd
              .put(WANT + n.id)
              .value(want)
              .exec(),
          ),
        ),
        CALL_MS,
        'asking the nodes',
      );
    } else this.wanted(want);
    return { version: st.version, digest: st.digest, nodes: targets.map((n) => n.id), request };
  }

  /** Every node's status (alone: this one's). */
  async status(): Promise<NodeUpgradeStatus[]> {
    if (!this.o.etcd) return [this.own()];
    const kvs = await answered(this.o.etcd.getAll().prefix(STATUS).strings(), CALL_MS, 'reading upgrade status');
    return Object.values(kvs)
      .map((v) => JSON.parse(v) as NodeUpgradeStatus)
      .sort((a, b) => a.node.localeCompare(b.node));
  }

  private own(): NodeUpgradeStatus {
    const s = this.state.get();
    return { node: this.o.nodes.selfId, version: s.version, platform: PLATFORM, last: s.last };
  }

  private async publish(): Promise<void> {
    if (!this.o.etcd) return;
    await answered(
      this.o.etcd
        .put(STATUS + this.o.nodes.selfId)
        .value(JSON.stringify(this.own()))
        .exec(),
      CALL_MS,
      'publishing upgrade status',
    );
  }

  /** Signature, key and statement; everything but the node-specific checks. */
  private async verify(body: { statement: Record<string, unknown>; signature: string }): Promise<ReleaseStatement> {
    const owner = body.statement.owner;
    if (typeof owner !== 'string')
      throw new RealmError('UPGRADE_INVALID', 'the release statement names no owner key; make it with `realm upgrade`');
    parsePublicKey(owner);
    const fp = fingerprint(owner);
    const trust = await this.o.manifests.trustList();
    // Never trust on first use here: a release runs as root on the node, so its key must have been trusted before.
    if (!trust.keys.some((k) => k.fingerprint === fp))
      throw new RealmError(
        'UPGRADE_KEY_UNTRUSTED',
        `this release is signed by ${fp}, a key this node does not trust (it trusts ${trust.keys.map((k) => k.fingerprint).join(', ') || 'none'}); if the key is yours, run \`realm node trust ${owner}\` first`,
      );
    if (!verifyPayload(owner, body.statement, body.signature))
      throw new RealmError(
        'UPGRADE_SIGNATURE',
        `the signature does not match the release statement and key ${fp} (it was changed after signing, or signed by another key); sign it again with \`realm upgrade\``,
      );
    return parseStatement(body.statement);
  }

  private async targets(body: PostUpgrade): Promise<NodeView[]> {
    const all = await this.o.nodes.list();
    for (const id of body.nodes)
      if (!all.some((n) => n.id === id))
        throw new RealmError('NODE_NOT_FOUND', `no node ${id} in this cluster; \`realm node ls\` lists them`);
    const picked = all.filter(
      (n) => (!body.nodes.length || body.nodes.includes(n.id)) && body.tags.every((t) => n.tags.includes(t)),
    );
    if (!picked.length)
      throw new RealmError(
        'NODE_NOT_FOUND',
        `no node has every tag of ${body.tags.join(', ')}; \`realm node ls\` lists the tags`,
      );
    const down = picked.filter((n) => n.state === 'down');
    if (down.length)
      throw new RealmError(
        'UPGRADE_INVALID',
        `node ${down.map((n) => n.id).join(', ')} is down: bring it up, or leave it out with --node`,
      );
    return picked;
  }

  /** A request for this node (from etcd, or posted here alone): each is acted on once. */
  private wanted(raw: string): void {
    if (this.closed) return;
    if (this.busy) {
      this.queued = raw;
      return;
    }
    let req: Want;
    try {
      req = JSON.parse(raw) as typeof req;
    } catch {
      return;
    }
    const version = typeof req.statement.version === 'number' ? req.statement.version : 0;
    if (typeof req.request !== 'string' || req.request === this.state.get().request) return;
    this.busy = true;
    void this.act(req, version).finally(() => {
      this.busy = false;
      const next = this.queued;
      this.queued = undefined;
      if (next !== undefined) this.wanted(next);
    });
  }

  private async act(req: Want, version: number): Promise<void> {
    const s = this.state.update((x) => {
      x.request = req.request as string;
    });
    try {
      await this.record(version, 'verifying', `checking release ${version}`);
      const st = await this.verify(req);
      if (st.version <= s.version) throw downgrade(this.o.nodes.selfId, st.version, s.version);
      if (st.platform !== PLATFORM) throw platformError(this.o.nodes.selfId, st.platform, PLATFORM);
      if (!this.handOver)
        throw new RealmError('UPGRADE_UNSUPPORTED', 'this daemon runs inside another program, which it cannot restart');
      await this.record(version, 'installing', `installing release ${version} into ${this.o.root}/versions/${version}`);
      const tree = await installRelease({
        root: this.o.root,
        version,
        digest: st.digest,
        tarball: (await this.blob(st.digest)).stream,
        modulesFrom: PACKAGE_ROOT,
      });
      const h: Handover = {
        version,
        tree,
        previousLink: readCurrent(this.o.root),
        previousMain: join(realpathSync(PACKAGE_ROOT), MAIN_IN_TREE),
      };
      await this.record(version, 'restarting', `restarting into release ${version}`);
      await this.handOver(h);
    } catch (e) {
      const code = e instanceof RealmError ? e.code : undefined;
      await this.record(version, code ? 'refused' : 'failed', errorMessage(e), code ?? 'INTERNAL');
      log.warn(`upgrade to release ${version} not made: ${errorMessage(e)}`);
    }
  }

  /** The blob, from this node's store or, when it lacks it, a peer's. */
  private async blob(digest: string): Promise<ReturnType<BlobStore['open']>> {
    try {
      return this.o.blobs.open(digest, ROOT_OWNER);
    } catch (e) {
      if (!(e instanceof RealmError && e.code === 'BLOB_NOT_FOUND') || !this.o.blobPeers) throw e;
      await this.o.blobPeers.fetch(digest, ROOT_OWNER);
      return this.o.blobs.open(digest, ROOT_OWNER);
    }
  }

  private async record(version: number, phase: UpgradePhase, message: string, code?: string): Promise<void> {
    this.state.outcome(version, phase, message, code);
    this.event(phase, version, message, code);
    await this.publish().catch((e: unknown) => log.warn(`upgrade status not published: ${errorMessage(e)}`));
  }

  private event(phase: UpgradePhase, version: number, message: string, code?: string): void {
    this.o.engine.events.emit({
      type: `upgrade.${phase}`,
      owner: null,
      ids: { node: this.o.nodes.selfId },
      data: { version, message, final: FINAL_PHASES.includes(phase), ...(code ? { code } : {}) },
    });
  }
}

function sameDir(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

function downgrade(node: string, version: number, at: number): RealmError {
  return new RealmError(
    'UPGRADE_DOWNGRADE',
    `node ${node} runs release ${at}; release ${version} is not above it and downgrades are refused: sign the release with --version ${at + 1} or higher`,
  );
}

function platformError(node: string, want: string, is: string): RealmError {
  return new RealmError(
    'UPGRADE_PLATFORM',
    `the release is for ${want} but node ${node} is ${is}: build and sign a release for ${is}, or leave the node out with --node/--tag`,
  );
}
