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
 */
import { z } from 'zod';
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import type { Packages } from '../packages/deploy.js';
import { fingerprint, parsePublicKey, verifyPayload } from '../signing/keys.js';
import { RealmError } from '../util/errors.js';
import { liveApps, planApps, type AppStep } from './manifest-apps.js';
import { diffApps, diffServices, fieldChanges, type ServiceChange } from './manifest-diff.js';
import { deployPackage, packagedOf, planPackage, type PackageStep } from './manifest-packages.js';
import {
  isPackaged,
  manifestDiffInputSchema,
  manifestInvalid,
  normalApp,
  normalEntry,
  serviceOf,
  signedManifestSchema,
  specOf,
  type Manifest,
  type ManifestApp,
  type ManifestEntry,
} from './manifest-spec.js';
import { ManifestStateFile, type TrustedKey } from './manifest-state.js';
import type { Services } from './services.js';
import type { ServiceSpec } from './spec.js';

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
  /** `first-use`: this manifest's key is now trusted by this node, on first use. */
  trusted: 'first-use' | 'already';
  changes: ServiceChange[];
}

type Step =
  | { kind: 'push'; spec: ServiceSpec }
  | { kind: 'scale'; name: string; replicas: number }
  | { kind: 'remove'; name: string }
  | PackageStep
  | AppStep;

export class Manifests {
  private readonly state: ManifestStateFile;
  private chain: Promise<unknown> = Promise.resolve();
  /** Deploys the services that come from packages (set by the app once the blob store is up). */
  packages: Packages | undefined;

  constructor(
    private readonly engine: Engine,
    private readonly services: Services,
    private readonly apps: Apps,
    dataDir: string,
  ) {
    this.state = new ManifestStateFile(dataDir);
  }

  /** One apply (or trust change) at a time: each sees the state the last one left. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The image's digest (hex) on this node; undefined for `host` and directory images. */
  private digestOf(image: string): string | undefined {
    try {
      return this.engine.images.resolveDigest(image).replace(/^sha256:/, '');
    } catch {
      return undefined;
    }
  }

  /**
   * Every service on the node in manifest form (the sha256 is kept where the applied manifest
   * pinned one); one deployed from a package by its package's digest.
   */
  private live(): Record<string, ManifestEntry> {
    const applied = this.state.get().current?.manifest.services ?? {};
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
            : this.digestOf(rec.spec.image);
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
    const s = this.state.get();
    const applied = s.current?.manifest.services ?? {};
    const appliedApps = s.current?.manifest.apps ?? {};
    const live = this.live();
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
    const cur = this.state.get().current?.manifest;
    const applied = cur?.services ?? {};
    const appliedApps = cur?.apps ?? {};
    const live = this.live();
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
      const s = this.state.get();
      parsePublicKey(input.publicKey);
      const fp = fingerprint(input.publicKey);
      const known = s.trusted.some((k) => k.fingerprint === fp);
      if (!known && s.firstUseClosed)
        throw new RealmError(
          'MANIFEST_KEY_UNTRUSTED',
          `this manifest is signed by ${fp}, a key this node does not trust (it trusts ${s.trusted.map((k) => k.fingerprint).join(', ') || 'no key now'}); if the key is yours, run \`realm node trust ${input.publicKey}\` against this node first`,
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
          `version ${m.version} is not above ${last}, the last version applied with key ${fp}; apply with --version ${last + 1} or higher`,
        );
      const before = this.live();
      const beforeApps = await this.liveApps();
      const steps = [
        ...(await this.plan(m, who)),
        ...(await planApps(this.apps, this.services, this.state.get().current?.manifest, m, input.modules ?? {}, who)),
      ];
      const applied = s.current?.manifest.services ?? {};
      const appliedApps = s.current?.manifest.apps ?? {};
      for (const step of steps) {
        if (step.kind === 'push') await this.services.push(step.spec, who);
        else if (step.kind === 'scale') await this.services.desired.scale(step.name, step.replicas, who);
        else if (step.kind === 'remove') await this.services.remove(step.name, who);
        else if (step.kind === 'deploy-package') await deployPackage(this.packages, step);
        else if (step.kind === 'push-app') {
          const { sha256: _, ...limits } = step.app;
          await this.apps.pushModule({ name: step.name, ...limits }, step.bytes, who, true);
        } else await this.apps.remove(step.name, who);
      }
      this.state.update((n) => {
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
      });
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
    });
  }

  /** Check every service and say what to do; throws (nothing changed) on the first that cannot be applied. */
  private async plan(m: Manifest, who: string): Promise<Step[]> {
    const steps: Step[] = [];
    const live = this.live();
    const applied = this.state.get().current?.manifest.services ?? {};
    for (const [name, entry] of Object.entries(m.services)) {
      const held = this.services.desired.lookup(name);
      if (held && held.owner !== who && !(name in applied))
        throw new RealmError(
          'SERVICE_NAME_TAKEN',
          `services.${name}: a service of ${held.owner} made ad hoc has this name; it is left alone (remove it or rename this one)`,
        );
      if (await this.apps.lookup(name))
        throw new RealmError(
          'SERVICE_NAME_TAKEN',
          `services.${name}: "${name}" is a wasm app on this gateway; rename the service`,
        );
      const now = live[name];
      const fields = now ? fieldChanges(now, entry).map((f) => f.field) : undefined;
      const scaleOnly = fields?.length === 1 && fields[0] === 'replicas';
      if (isPackaged(entry)) {
        // As an app's module: a package deployed already was checked then (its trees are stored by content).
        if (scaleOnly) steps.push({ kind: 'scale', name, replicas: entry.replicas });
        else if (fields?.length !== 0) steps.push(await planPackage(this.packages, name, entry, who));
        continue;
      }
      try {
        this.engine.sandboxes.resolveImage(entry.image);
      } catch (e) {
        if (e instanceof RealmError) throw new RealmError(e.code, `services.${name}: ${e.message}`);
        throw e;
      }
      if (entry.sha256 !== undefined) {
        const got = this.digestOf(entry.image);
        if (got !== entry.sha256)
          throw new RealmError(
            'MANIFEST_DIGEST_MISMATCH',
            got
              ? `services.${name}.sha256: image "${entry.image}" is sha256:${got} on this node, not sha256:${entry.sha256} as signed; pin the image by digest or sign the digest it has`
              : `services.${name}.sha256: image "${entry.image}" has no digest on this node (host and directory images have none); leave sha256 out or use a stored image`,
          );
      }
      const spec = specOf(name, entry);
      if (scaleOnly) steps.push({ kind: 'scale', name, replicas: entry.replicas });
      else if (fields?.length !== 0) steps.push({ kind: 'push', spec });
    }
    for (const name of Object.keys(applied))
      if (!(name in m.services) && this.services.desired.lookup(name)) steps.push({ kind: 'remove', name });
    return steps;
  }

  trustList(): { keys: TrustedKey[]; firstUseOpen: boolean } {
    const s = this.state.get();
    return { keys: s.trusted, firstUseOpen: !s.firstUseClosed };
  }

  /** Trust a key (`realm node trust`); this also ends trust on first use. */
  trust(publicKey: string): Promise<TrustedKey> {
    return this.locked(() => {
      parsePublicKey(publicKey);
      const fp = fingerprint(publicKey);
      const s = this.state.update((n) => {
        if (!n.trusted.some((k) => k.fingerprint === fp))
          n.trusted.push({ publicKey: publicKey.trim(), fingerprint: fp, how: 'explicit', addedAt: Date.now() });
        n.firstUseClosed = true;
      });
      return Promise.resolve(s.trusted.find((k) => k.fingerprint === fp)!);
    });
  }

  /** Stop trusting a key (by public key or fingerprint); trust on first use stays closed. */
  revoke(key: string): Promise<TrustedKey> {
    return this.locked(() => {
      const k = key.trim();
      const found = this.state.get().trusted.find((t) => t.fingerprint === k || t.publicKey === k);
      if (!found)
        throw new RealmError(
          'KEY_NOT_FOUND',
          `this node does not trust "${k.slice(0, 80)}"; \`realm node trusted\` lists the keys it trusts`,
        );
      this.state.update((n) => {
        n.trusted = n.trusted.filter((t) => t.fingerprint !== found.fingerprint);
      });
      return Promise.resolve(found);
    });
  }
}
