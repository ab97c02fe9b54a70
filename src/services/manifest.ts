/**
 * Signed manifests on a node (`realm apply`): check everything, then make the services match.
 * Before anything changes the node checks, in order: the key (trusted, or the first key ever seen
 * when trust on first use is still open), the signature over the manifest's canonical bytes, the
 * manifest itself (kind, known keys, types), a version strictly above the last one applied with
 * that key, every service's name, image and digest. Then services in the manifest are started or
 * updated (a replica count alone is scaled, nothing restarted; an unchanged service is left as it
 * is), and services the previous manifest had and this one drops are removed. Services made ad hoc
 * (`realm push`) and never in a manifest are left alone. Wasm apps (`[apps.NAME]`) are the same:
 * each names its module by sha256; the module comes with the apply (`modules`) or is one the node
 * keeps already, and its bytes are hashed against the signed digest before anything changes. A
 * service may come from a package (`package_sha256`, manifest-packages.ts), read and checked the
 * same way before anything changes, then deployed as `realm package deploy` does. Drift: what live
 * changes (`svc scale`, `push`, `svc rm`, `package deploy`) made of the applied manifest.
 * In a cluster the services are the cluster's, and so are the trusted keys, the versions and the
 * manifest applied last (etcd, cluster/manifest-state-etcd.ts): an apply on any node writes the
 * services and that state in one transaction, only if neither changed since it read them, so an
 * old manifest replayed to another node is as stale there, and two nodes trust the same owners.
 */
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import type { AppRecord } from '../store/store.js';
import type { Packages } from '../packages/deploy.js';
import { fingerprint, parsePublicKey, verifyPayload } from '../signing/keys.js';
import { RealmError } from '../util/errors.js';
import { liveApps, planApps } from './manifest-apps.js';
import { digestOf, planServices, type Step } from './manifest-plan.js';
import { diffApps, diffServices, type ServiceChange } from './manifest-diff.js';
import { deployPackage, packagedOf } from './manifest-packages.js';
import {
  isPackaged,
  manifestDiffInputSchema,
  manifestInvalid,
  normalApp,
  normalEntry,
  serviceOf,
  signedManifestSchema,
  type ManifestApp,
  type ManifestEntry,
} from './manifest-spec.js';
import { EtcdManifestState } from '../cluster/manifest-state-etcd.js';
import { log } from '../logs/log.js';
import type { CommitOutcome, PlannedChange } from './desired.js';
import {
  ManifestStateFile,
  ownState,
  type ManifestState,
  type ManifestStateStore,
  type StateRead,
  type TrustedKey,
} from './manifest-state.js';
import type { Services } from './services.js';

export const applyManifestSchema = z
  .object({
    /** The signed document: `{kind: "realm-manifest", version, services}`; checked after its signature. */
    manifest: z.record(z.string(), z.unknown()),
    /** ed25519 over the manifest's RFC 8785 canonical JSON, base64. */
    signature: z.string().max(256),
    /** `realm-ed25519:BASE64`, as `realm key show` prints it. */
    publicKey: z.string().max(256),
    /** Must equal the manifest's own (signed) version. */
    version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    /**
     * The apps' module bytes (base64) by sha256 (hex), as `realm apply` reads them from the files the
     * TOML names; unsigned: each is hashed and must be the digest the manifest signed. A module the
     * node keeps already need not be sent. (Packages travel through the blob store: `realm apply`
     * uploads each, and the manifest names it by digest.)
     */
    modules: z
      .record(
        z.string().regex(/^[0-9a-f]{64}$/, 'modules are keyed by their sha256, 64 lowercase hex digits'),
        z.string().max(16 * 1024 ** 2),
      )
      .optional(),
  })
  .strict();

export const diffManifestSchema = z
  .object({ services: z.record(z.string(), z.unknown()), apps: z.record(z.string(), z.unknown()).optional() })
  .strict();
export const trustKeySchema = z.object({ publicKey: z.string().max(256) }).strict();

export interface ApplyResult {
  version: number;
  owner: { publicKey: string; fingerprint: string };
  /** `first-use`: this manifest's key is now trusted by this node (in a cluster: by the cluster), on first use. */
  trusted: 'first-use' | 'already';
  changes: ServiceChange[];
}

/** An apply that lost a race with another node's (in a cluster) reads everything again, this many times in all. */
const TRIES = 3;

export class Manifests {
  private readonly state: ManifestStateFile | EtcdManifestState;
  private chain: Promise<unknown> = Promise.resolve();
  /** Deploys the services that come from packages (set by the app once the blob store is up). */
  packages: Packages | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly services: Services,
    private readonly apps: Apps,
    private readonly dataDir: string,
  ) {
    this.state = services.cluster ? new EtcdManifestState(services.cluster.client) : new ManifestStateFile(dataDir);
  }

  private get store(): ManifestStateStore {
    return this.state;
  }

  /**
   * In a cluster: read the cluster's state (etcd answers). A node that joins with a state of its
   * own (DATA/manifest/state.json from when it ran alone) leaves the file as it is and goes by the
   * cluster's; it says so, since the keys it trusted alone are not the cluster's.
   */
  async start(): Promise<void> {
    await this.store.start();
    const own = this.state instanceof EtcdManifestState ? ownState(this.dataDir) : undefined;
    if (!own) return;
    const c = (await this.store.read()).state;
    log.warn(
      `signed manifests: ${own} is this node's from before it joined a cluster; it is left as it is and not used: the cluster's trusted keys and versions in etcd hold (${c.trusted.length} trusted key(s)${c.firstUseClosed ? '' : ', trust on first use still open: `realm node trust KEY` closes it'})`,
    );
  }

  close(): Promise<void> {
    return this.store.close();
  }

  /** One apply (or trust change) at a time: each sees the state the last one left. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * Every service on the node in manifest form (the sha256 is kept where the applied manifest
   * pinned one); one deployed from a package by its package's digest.
   */
  private live(s: ManifestState): Record<string, ManifestEntry> {
    const applied = s.current?.manifest.services ?? {};
    const out: Record<string, ManifestEntry> = {};
    for (const rec of this.services.desired.all()) {
      if (rec.package) {
        out[rec.spec.name] = packagedOf({ ...rec, package: rec.package });
        continue;
      }
      const was = applied[rec.spec.name];
      const sha =
        was === undefined || isPackaged(was) || was.sha256 === undefined
          ? undefined
          : was.image === rec.spec.image
            ? was.sha256
            : digestOf(this.engine, rec.spec.image);
      out[rec.spec.name] = serviceOf(rec.spec, sha);
    }
    return out;
  }

  /** Every app on the node in manifest form. */
  private liveApps(): Promise<Record<string, ManifestApp>> {
    return liveApps(this.apps);
  }

  async status(): Promise<{
    trusted: TrustedKey[];
    firstUseOpen: boolean;
    current: { version: number; owner: { publicKey: string; fingerprint: string }; appliedAt: string; appliedBy: string } | null;
    drift: ServiceChange[];
    services: Record<string, ManifestEntry>;
    unmanaged: Record<string, ManifestEntry>;
    apps: Record<string, ManifestApp>;
    unmanagedApps: Record<string, ManifestApp>;
  }> {
    const { state: s } = await this.store.read();
    const applied = s.current?.manifest.services ?? {};
    const appliedApps = s.current?.manifest.apps ?? {};
    const live = this.live(s);
    const managed = Object.fromEntries(Object.entries(live).filter(([n]) => n in applied));
    const unmanaged = Object.fromEntries(Object.entries(live).filter(([n]) => !(n in applied)));
    const apps = await this.liveApps();
    const managedApps = Object.fromEntries(Object.entries(apps).filter(([n]) => n in appliedApps));
    return {
      trusted: s.trusted,
      firstUseOpen: !s.firstUseClosed,
      current: s.current && {
        version: s.current.manifest.version,
        owner: { publicKey: s.current.publicKey, fingerprint: s.current.fingerprint },
        appliedAt: new Date(s.current.appliedAt).toISOString(),
        appliedBy: s.current.appliedBy,
      },
      drift: [...diffServices(applied, managed), ...diffApps(appliedApps, managedApps)],
      services: managed,
      unmanaged,
      apps: managedApps,
      unmanagedApps: Object.fromEntries(Object.entries(apps).filter(([n]) => !(n in appliedApps))),
    };
  }

  /** What applying these services and apps (TOML made JSON by the CLI, apps' modules as digests) would change. */
  async diff(input: unknown): Promise<{ changes: ServiceChange[]; unmanaged: string[]; unmanagedApps: string[] }> {
    const r = manifestDiffInputSchema.safeParse(input);
    if (!r.success) throw manifestInvalid(r.error.issues, input);
    const next = Object.fromEntries(Object.entries(r.data.services).map(([n, s]) => [n, normalEntry(s)]));
    const nextApps = Object.fromEntries(Object.entries(r.data.apps).map(([n, a]) => [n, normalApp(a)]));
    const { state: s } = await this.store.read();
    const cur = s.current?.manifest;
    const applied = cur?.services ?? {};
    const appliedApps = cur?.apps ?? {};
    const live = this.live(s);
    const apps = await this.liveApps();
    const left = (have: object, was: object, want: object): string[] =>
      Object.keys(have)
        .filter((n) => !(n in was) && !(n in want))
        .sort();
    return {
      changes: [...diffServices(live, next, (n) => n in applied), ...diffApps(apps, nextApps, (n) => n in appliedApps)],
      unmanaged: left(live, applied, next),
      unmanagedApps: left(apps, appliedApps, nextApps),
    };
  }

  apply(input: z.output<typeof applyManifestSchema>, who: string): Promise<ApplyResult> {
    return this.locked(async () => {
      for (let tries = 1; ; tries++) {
        const read = await this.store.read();
        // In a cluster: plan against every service and app as etcd has them now.
        await this.services.desired.caughtUp();
        await this.apps.caughtUp();
        const r = await this.applyOnce(input, who, read);
        if (r) return r;
        if (tries === TRIES)
          throw new RealmError(
            'CLUSTER_UNAVAILABLE',
            'the signed manifests’ state or a service of this manifest was changed on other nodes while it was applied, again and again; nothing was changed: apply again',
          );
      }
    });
  }

  /** Check, plan and apply against the state `read`; undefined (nothing changed) when, in a cluster, it or a service changed since. */
  private async applyOnce(
    input: z.output<typeof applyManifestSchema>,
    who: string,
    read: StateRead,
  ): Promise<ApplyResult | undefined> {
    const s = read.state;
    parsePublicKey(input.publicKey);
    const fp = fingerprint(input.publicKey);
    const known = s.trusted.some((k) => k.fingerprint === fp);
    if (!known && s.firstUseClosed)
      throw new RealmError(
        'MANIFEST_KEY_UNTRUSTED',
        `this manifest is signed by ${fp}, a key ${this.store.scope} does not trust (it trusts ${s.trusted.map((k) => k.fingerprint).join(', ') || 'no key now'}); if the key is yours, run \`realm node trust ${input.publicKey}\` against this node first`,
      );
    if (!verifyPayload(input.publicKey, input.manifest, input.signature))
      throw new RealmError(
        'MANIFEST_SIGNATURE_INVALID',
        `the signature does not match the manifest and key ${fp} (the manifest was changed after signing, or signed by another key); sign it again with \`realm apply\``,
      );
    const r = signedManifestSchema.safeParse(input.manifest);
    if (!r.success) throw manifestInvalid(r.error.issues, input.manifest);
    const m = r.data;
    if (m.version !== input.version)
      throw new RealmError('MANIFEST_INVALID', `version ${input.version} was posted but the signed manifest says ${m.version}`);
    const last = s.versions[fp] ?? 0;
    if (m.version <= last)
      throw new RealmError(
        'MANIFEST_VERSION_STALE',
        `version ${m.version} is not above ${last}, the last version applied with key ${fp}${this.state instanceof EtcdManifestState ? ' on any node of the cluster' : ''}; apply with --version ${last + 1} or higher`,
      );
    const before = this.live(s);
    const beforeApps = await this.liveApps();
    const steps = [
      ...(await planServices(
        { engine: this.engine, services: this.services, apps: this.apps, packages: this.packages },
        before,
        m,
        who,
        s,
      )),
      ...(await planApps(this.apps, this.services, s.current?.manifest, m, input.modules ?? {}, who)),
    ];
    const applied = s.current?.manifest.services ?? {};
    const appliedApps = s.current?.manifest.apps ?? {};
    const change = (n: ManifestState): void => {
      if (!known) n.trusted.push({ publicKey: input.publicKey.trim(), fingerprint: fp, how: 'first-use', addedAt: Date.now() });
      n.firstUseClosed = true;
      n.versions[fp] = m.version;
      n.current = {
        manifest: m,
        signature: input.signature,
        publicKey: input.publicKey.trim(),
        fingerprint: fp,
        appliedAt: Date.now(),
        appliedBy: who,
      };
    };
    if (this.state instanceof EtcdManifestState) {
      if (!(await this.commit(this.state, steps, who, read, change))) return undefined;
    } else {
      for (const step of steps) await this.run(step, who);
      this.state.write(change);
    }
    const touched = Object.fromEntries(Object.entries(before).filter(([n]) => n in m.services || n in applied));
    const touchedApps = Object.fromEntries(Object.entries(beforeApps).filter(([n]) => n in m.apps || n in appliedApps));
    return {
      version: m.version,
      owner: { publicKey: input.publicKey.trim(), fingerprint: fp },
      trusted: known ? 'already' : 'first-use',
      changes: [
        ...diffServices(touched, m.services, (n) => n in applied),
        ...diffApps(touchedApps, m.apps, (n) => n in appliedApps),
      ],
    };
  }

  private async run(step: Step, who: string): Promise<void> {
    if (step.kind === 'push') await this.services.push(step.spec, who);
    else if (step.kind === 'scale') await this.services.desired.scale(step.name, step.replicas, who);
    else if (step.kind === 'remove') await this.services.remove(step.name, who);
    else if (step.kind === 'deploy-package') await deployPackage(this.packages, step);
    else if (step.kind === 'push-app') {
      const { sha256: _, ...limits } = step.app;
      await this.apps.pushModule({ name: step.name, ...limits }, step.bytes, who, true);
    } else await this.apps.remove(step.name, who);
  }

  /**
   * In a cluster: every service change, every app change and the new state in one etcd
   * transaction, only if the state, each service and each app are still as read (false: one
   * changed, nothing was written). Then the packages' files.
   */
  private async commit(
    state: EtcdManifestState,
    steps: Step[],
    who: string,
    read: StateRead,
    change: (n: ManifestState) => void,
  ): Promise<boolean> {
    const desired = this.services.desired;
    const planned: PlannedChange[] = [];
    for (const step of steps)
      if (step.kind === 'push') planned.push(await desired.planPush(step.spec, who));
      else if (step.kind === 'scale') planned.push(desired.planScale(step.name, step.replicas, who));
      else if (step.kind === 'remove') planned.push(desired.planRemove(step.name, who));
    const next = structuredClone(read.state);
    change(next);
    // The apps' records go in the same transaction (their modules put in the peers' reach first).
    const appPuts: { rec: AppRecord; bytes: Buffer; held: AppRecord | null }[] = [];
    const appRemoves: AppRecord[] = [];
    for (const step of steps)
      if (step.kind === 'push-app') {
        const { sha256: _, ...limits } = step.app;
        appPuts.push({ ...(await this.apps.record({ name: step.name, ...limits }, step.bytes, who, true)), bytes: step.bytes });
      } else if (step.kind === 'remove-app') appRemoves.push(await this.apps.get(step.name, who));
    const apps = appPuts.length || appRemoves.length ? await this.apps.shared?.prepare?.(appPuts, appRemoves) : undefined;
    let r: CommitOutcome;
    try {
      r = await desired.commit(planned, state.swap(read, next), apps?.writes);
    } catch (e) {
      apps?.abort();
      throw e;
    }
    if (r.outcome !== 'done') {
      apps?.abort();
      return false;
    }
    apps?.done(r.revision);
    for (const c of planned) if (c.kind === 'delete') await this.services.gone(c.rec.spec.name);
    for (const step of steps)
      if (step.kind === 'deploy-package' || (!apps && (step.kind === 'push-app' || step.kind === 'remove-app')))
        await this.run(step, who);
    // The apps written with the services are kept or forgotten here (the other nodes take them from their watch).
    for (const p of apps ? appPuts : []) await this.apps.keep(p.rec, p.bytes, p.held);
    for (const rec of apps ? appRemoves : []) await this.apps.forget(rec);
    return true;
  }

  /** The keys trusted now (in a cluster: read from etcd, so a key revoked on any node is at once on every node). */
  async trustList(): Promise<{ keys: TrustedKey[]; firstUseOpen: boolean }> {
    const { state: s } = await this.store.read();
    return { keys: s.trusted, firstUseOpen: !s.firstUseClosed };
  }

  /** Trust a key (`realm node trust`; in a cluster, for the cluster); this also ends trust on first use. */
  trust(publicKey: string): Promise<TrustedKey> {
    return this.locked(async () => {
      parsePublicKey(publicKey);
      const fp = fingerprint(publicKey);
      const s = await this.store.update((n) => {
        if (!n.trusted.some((k) => k.fingerprint === fp))
          n.trusted.push({ publicKey: publicKey.trim(), fingerprint: fp, how: 'explicit', addedAt: Date.now() });
        n.firstUseClosed = true;
      });
      return s.trusted.find((k) => k.fingerprint === fp)!;
    });
  }

  /** Stop trusting a key (by public key or fingerprint); trust on first use stays closed. */
  revoke(key: string): Promise<TrustedKey> {
    return this.locked(async () => {
      const k = key.trim();
      const found = (await this.store.read()).state.trusted.find((t) => t.fingerprint === k || t.publicKey === k);
      if (!found)
        throw new RealmError(
          'KEY_NOT_FOUND',
          `${this.store.scope} does not trust "${k.slice(0, 80)}"; \`realm node trusted\` lists the keys it trusts`,
        );
      await this.store.update((n) => {
        n.trusted = n.trusted.filter((t) => t.fingerprint !== found.fingerprint);
      });
      return found;
    });
  }
}
