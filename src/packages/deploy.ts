/**
 * `realm package deploy`: a `.realm` file from the blob store becomes a service (or, for a
 * component, a gateway app). In order, each step refusing before anything is kept:
 *  1. read and check the archive without writing (archive.ts): PACKAGE_INVALID naming the entry or key;
 *  2. check the service (its fields, image, name) and that its state volumes are the caller's;
 *  3. unpack it in a sandbox into a staging directory and check what landed (unpack.ts, tree.ts);
 *  4. store each static/config tree once per content digest (DATA/packages/trees/<hex>);
 *  5. make and seed each state volume that does not exist yet (first deploy only: a later
 *     version never writes into it);
 *  6. push the service with its package and mounts; the reconciler replaces the old replicas
 *     with new ones that mount the new trees.
 * A failure removes what this deploy made (staging, new volumes, unreferenced trees). Steps 1 and 2
 * are `ready` (writing nothing): a signed manifest runs them for each packaged service before it
 * changes anything, then `deployReady` runs the rest.
 *
 * In a cluster the service's desired state (in etcd) names the package by digest and its trees by
 * theirs; a node given a replica that lacks the trees gets the package from its blob store or a
 * peer and unpacks it the same way (fetch-trees.ts). A package with a state mount is pinned to the
 * node it is deployed on (its volume is that node's): every replica runs there, and later versions
 * are deployed through that node.
 */
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BlobInfo, BlobStore } from '../blobs/store.js';
import type { PeerBlobs } from '../cluster/blob-peers.js';
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import { APP_NAME, pushAppSchema } from '../gateway/apps.js';
import { mayUse } from '../engine/owner.js';
import type { Services } from '../services/services.js';
import { pushServiceSchema, type ServiceRecord, type ServiceSpec } from '../services/spec.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { chownTree, removeTree } from '../util/safe-tree.js';
import { MAX_PACKAGE_BYTES, scanPackage, type ScannedPackage } from './archive.js';
import { invalid, stateName, type PackageManifest } from './manifest.js';
import { stateNode, type PackageMountRef, type PackageRef } from './ref.js';
import { packagesDir, treeDir } from './replica-mounts.js';
import { unpackTrees } from './fetch-trees.js';
import { storeTree } from './store-tree.js';
import { unpackInSandbox } from './unpack.js';
import { log } from '../logs/log.js';

/** The blob reference that holds a service's package (`package:NAME`). */
const REF = 'package:';

export interface Deployment {
  name: string;
  kind: 'process' | 'wasm';
  package: PackageRef;
  /** State volumes made and seeded by this deploy (a later deploy finds them and leaves them be). */
  seeded: string[];
  /** The service's state (process services); null for a component (see `realm push ls`). */
  service: ServiceRecord | null;
}

/** The state volume of mount `mount` of service `service`: `svc.SERVICE.MOUNT` (shortened by a hash past 63). */
export function stateVolume(service: string, mount: string): string {
  const plain = `svc.${service}.${mount}`;
  if (plain.length <= 63) return plain;
  const h = createHash('sha256').update(`${service}/${mount}`).digest('hex').slice(0, 12);
  return `svc.${service.slice(0, 63 - 4 - 13 - 1 - Math.min(mount.length, 20))}-${h}.${mount.slice(0, 20)}`;
}

/** A package read from the blob store and checked, nothing written yet (`Packages.ready`). */
export interface ReadyPackage {
  bytes: Buffer;
  scanned: ScannedPackage;
  /** The service's name. */
  name: string;
  owner: string;
  /** What is pushed; undefined for a component (a gateway app). */
  spec: ServiceSpec | undefined;
  /** The state volume of each state mount, by the mount's index. */
  volumes: Map<number, string>;
}

export class Packages {
  private readonly root: string;

  constructor(
    private readonly engine: Engine,
    private readonly services: Services,
    private readonly apps: Apps,
    private readonly blobs: BlobStore,
    /** In a cluster: the other nodes' blob stores, asked for a package this node lacks. */
    private readonly peers?: PeerBlobs,
  ) {
    this.root = packagesDir(engine.config.dataDir);
    mkdirSync(join(this.root, 'trees'), { recursive: true, mode: 0o700 });
    // Staging a crashed deploy left (no deploy runs yet), then trees and package blobs of services
    // removed since the last deploy (a sweep follows every deploy too), once the services are
    // known (a cluster's are read from etcd at start: sweeping before would drop every one's).
    const staging = join(this.root, 'staging');
    this.queue = (existsSync(staging) ? removeTree(staging) : Promise.resolve())
      .then(() => services.loaded)
      .then(() => this.sweep())
      .catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
    services.mounts.fetch = (pkg, owner, service) => this.fetchTrees(pkg, owner, service);
  }

  /** The package blob as `owner` may read it here, fetched from a peer (verified) when this node has none. */
  private async have(digest: string, owner: string): Promise<BlobInfo> {
    try {
      return this.blobs.info(digest, owner);
    } catch (e) {
      if (!(e instanceof RealmError && e.code === 'BLOB_NOT_FOUND' && this.peers)) throw e;
      // Not fetched at all when it is too large to be a package.
      const size = await this.peers.size(digest, owner);
      if (size !== undefined && size > MAX_PACKAGE_BYTES)
        throw invalid(`blob ${digest} is ${size} bytes; a package is at most ${MAX_PACKAGE_BYTES}`);
      return this.peers.fetch(digest, owner);
    }
  }

  /** Read a package of `owner`'s from the blob store (a peer's when this node has none); PACKAGE_INVALID when it is too large to be one. */
  private async read(digest: string, owner: string): Promise<Buffer> {
    const info = await this.have(digest, owner);
    if (info.size > MAX_PACKAGE_BYTES)
      throw invalid(`blob ${digest} is ${info.size} bytes; a package is at most ${MAX_PACKAGE_BYTES}`);
    const chunks: Buffer[] = [];
    for await (const c of this.blobs.open(digest, owner).stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  }

  /** Deploy the package `digest` (in the blob store) as service `name` (default: the package's name). One at a time. */
  deploy(digest: string, owner: string, name?: string): Promise<Deployment> {
    return this.queued(async () => this.deployNow(await this.ready(digest, owner, name)));
  }

  /**
   * Deploy a package read and checked by `ready` (a signed manifest checks every service before it
   * changes anything, then deploys). One at a time, as `deploy`.
   */
  deployReady(r: ReadyPackage): Promise<Deployment> {
    return this.queued(() => this.deployNow(r));
  }

  private queued<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn);
    this.queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Deploys wait for the one before (a sweep must not see a tree stored but not yet recorded). */
  private queue: Promise<void> = Promise.resolve();

  /**
   * Steps 1 and 2: read the package `digest` from the blob store and check it and its service,
   * writing nothing. `replicas`: instead of the package's own count (a signed manifest's).
   */
  async ready(digest: string, owner: string, name?: string, o: { replicas?: number } = {}): Promise<ReadyPackage> {
    const bytes = await this.read(digest, owner);
    const scanned = await scanPackage(bytes);
    const svcName = name ?? scanned.manifest.name;
    if (!APP_NAME.test(svcName))
      throw invalid(`"${svcName}" is not a service name: use 1-63 of a-z, 0-9 and -, starting with a letter or digit`);
    const { manifest } = scanned;
    const base = manifest.service.component === undefined ? this.specOf(manifest, svcName) : undefined;
    const spec = base && o.replicas !== undefined ? { ...base, replicas: o.replicas } : base;
    if (spec) {
      // What push would refuse, refused before anything is unpacked.
      const held = this.services.desired.lookup(svcName);
      if (held && !mayUse(owner, held.owner))
        throw new RealmError('SERVICE_NAME_TAKEN', `the service name "${svcName}" is taken by another user; pick another name`);
      this.engine.sandboxes.resolveImage(spec.image);
      // A state volume is one node's: a new version of a service that keeps one is deployed there.
      const pinned = stateNode(held?.package);
      const self = this.services.selfId;
      if (this.services.cluster && pinned && pinned.node !== self && manifest.mounts.some((m) => m.kind === 'state'))
        throw new RealmError(
          'INVALID_REQUEST',
          `service ${svcName} keeps its state mount's volume ${pinned.volume} on node ${pinned.node}, where all its replicas run; deploy this version through node ${pinned.node} (this is node ${self}), or remove the service first (realm svc rm ${svcName}) to start again here with a new volume`,
        );
    }
    const volumes = new Map<number, string>();
    for (const [i, m] of manifest.mounts.entries()) {
      if (m.kind !== 'state') continue;
      const v = stateVolume(svcName, stateName(m));
      const rec = await this.engine.volumes.record(v);
      if (rec && (!mayUse(owner, rec.owner) || rec.workspace))
        throw new RealmError(
          'VOLUME_IN_USE',
          `mounts[${i}]: the volume ${v} is another user's; deploy under another name (--name)`,
        );
      volumes.set(i, v);
    }
    return { bytes, scanned, name: svcName, owner, spec, volumes };
  }

  private async deployNow(r: ReadyPackage): Promise<Deployment> {
    const { bytes, scanned, name: svcName, owner, spec, volumes } = r;
    const { manifest } = scanned;
    const staging = join(this.root, 'staging', randomBytes(8).toString('hex'));
    const made: string[] = [];
    try {
      const out = await unpackInSandbox(this.engine, bytes, staging, owner, scanned.manifestText);
      const ref = await this.place(scanned, out, owner, volumes, made);
      if (manifest.service.component !== undefined) {
        const module = readFileSync(join(out, manifest.service.component)).toString('base64');
        await this.apps.push(
          pushAppSchema.parse({
            name: svcName,
            module,
            ...(manifest.service.visibility ? { visibility: manifest.service.visibility } : {}),
            ...(manifest.service.replicas ? { replicas: Math.min(manifest.service.replicas, 16) } : {}),
          }),
          owner,
        );
        return { name: svcName, kind: 'wasm', package: ref, seeded: made, service: null };
      }
      const service = await this.services.push(spec!, owner, ref);
      this.hold(ref, svcName, owner);
      return { name: svcName, kind: 'process', package: ref, seeded: made, service };
    } catch (e) {
      for (const v of made) await this.engine.volumes.remove(v).catch(() => undefined);
      throw e;
    } finally {
      await removeTree(staging).catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
      await this.sweep().catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
    }
  }

  /** The service's spec from the manifest, as push checks it (PACKAGE_INVALID naming the key). */
  private specOf(m: PackageManifest, name: string): ReturnType<typeof pushServiceSchema.parse> {
    const { component: _c, ...service } = m.service;
    const r = pushServiceSchema.safeParse({ ...service, name });
    if (!r.success) {
      const issue = r.error.issues[0];
      const key = ['service', ...(issue?.path ?? []).map(String)].join('.');
      throw invalid(`${key}: ${issue?.message ?? 'invalid'}`, { key });
    }
    return r.data;
  }

  /** Store the unpacked trees and seed new state volumes; the package's reference. */
  private async place(
    scanned: ScannedPackage,
    out: string,
    owner: string,
    volumes: Map<number, string>,
    made: string[],
  ): Promise<PackageRef> {
    const { manifest } = scanned;
    const storage = this.engine.hostIds.storage;
    const mounts: PackageMountRef[] = [];
    for (const [i, m] of manifest.mounts.entries()) {
      if (m.kind === 'static' || m.kind === 'config') {
        mounts.push({ kind: m.kind, path: m.path, tree: await storeTree(this.engine, join(out, m.source!)) });
      } else if (m.kind === 'work') {
        mounts.push({ kind: 'work', path: m.path });
      } else {
        const volume = volumes.get(i)!;
        if (!(await this.engine.volumes.record(volume))) {
          const dir = await this.engine.volumes.create(volume, owner);
          made.push(volume);
          if (m.source) {
            cpSync(join(out, m.source), dir, { recursive: true, dereference: false, force: false });
            await chownTree(dir, storage, storage);
          }
        }
        // In a cluster the volume is this node's: the service is pinned here.
        mounts.push({ kind: 'state', path: m.path, volume, ...(this.services.cluster ? { node: this.services.selfId } : {}) });
      }
    }
    return { name: manifest.name, version: manifest.version, digest: scanned.digest, mounts };
  }

  /** Packages being made ready on this node, by digest (two replicas starting at once wait for one unpack). */
  private readonly fetching = new Map<string, Promise<void>>();

  /**
   * Get and store the static and config trees of `pkg` (service `service`'s, deployed on another
   * node): its blob from this node's store or a peer's, unpacked and checked (fetch-trees.ts),
   * then held by the service as a deploy holds it. One unpack per package at a time, in turn with deploys.
   */
  private fetchTrees(pkg: PackageRef, owner: string, service: string): Promise<void> {
    let p = this.fetching.get(pkg.digest);
    if (!p) {
      p = this.queued(async () => {
        const staging = join(this.root, 'staging', randomBytes(8).toString('hex'));
        try {
          const bytes = await this.read(pkg.digest, owner);
          await unpackTrees(this.engine, bytes, pkg, staging, owner);
          this.hold(pkg, service, owner);
          log.info(`package ${pkg.name} ${pkg.version} (${pkg.digest}) unpacked for service ${service}`, { service });
        } catch (e) {
          throw new RealmError(
            e instanceof RealmError ? e.code : 'INTERNAL',
            `package ${pkg.name} ${pkg.version} (${pkg.digest}) could not be made ready on node ${this.services.selfId}: ${errorMessage(e)}`,
          );
        } finally {
          await removeTree(staging).catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
          await this.sweep().catch((e: unknown) => log.error(`packages: ${errorMessage(e)}`, { err: e }));
        }
      }).finally(() => this.fetching.delete(pkg.digest));
      this.fetching.set(pkg.digest, p);
    }
    return p;
  }

  /** Hold the package's blob by `package:NAME` (the previous version's goes at the sweep, once no rollback may need it). */
  private hold(ref: PackageRef, name: string, owner: string): void {
    this.blobs.addRef(ref.digest, owner, `${REF}${name}`);
  }

  /**
   * Remove trees no service's desired state (nor the generation a rollout under way would roll
   * back to) and no live sandbox mounts, and let go of package blobs whose service is gone or
   * moved to another package.
   */
  async sweep(): Promise<void> {
    const records = this.services.desired.all();
    const held = (r: ServiceRecord): PackageRef[] => [r.package, r.rollout?.from?.package].filter((p) => p !== undefined);
    const wanted = new Set(
      records.flatMap((r) =>
        held(r).flatMap((p) => p.mounts.flatMap((m) => (m.tree ? [treeDir(this.engine.config.dataDir, m.tree)] : []))),
      ),
    );
    for (const sb of await this.engine.listSandboxes()) for (const b of sb.binds ?? []) wanted.add(b.source);
    const trees = join(this.root, 'trees');
    for (const name of readdirSync(trees)) {
      const dir = join(trees, name);
      if (!wanted.has(dir)) await removeTree(dir);
    }
    for (const r of this.blobs.refsStartingWith(REF, Date.now() + 1)) {
      const rec = this.services.desired.lookup(r.ref.slice(REF.length));
      if (!rec || !held(rec).some((p) => p.digest === r.digest)) this.blobs.dropRef(r.digest, r.owner, r.ref);
    }
  }
}
