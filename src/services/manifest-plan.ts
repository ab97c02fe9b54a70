/**
 * What a signed manifest's services need done (manifest.ts applies it): each service checked (its
 * name free, its image known, its signed digest the image's) and planned as a push, a scale, a
 * package deploy or nothing; services the previous manifest had and this one drops are removed.
 */
import type { Engine } from '../engine/engine.js';
import type { Apps } from '../gateway/apps.js';
import type { Packages } from '../packages/deploy.js';
import { RealmError } from '../util/errors.js';
import type { AppStep } from './manifest-apps.js';
import { fieldChanges } from './manifest-diff.js';
import { planPackage, type PackageStep } from './manifest-packages.js';
import { isPackaged, specOf, type Manifest, type ManifestEntry } from './manifest-spec.js';
import type { ManifestState } from './manifest-state.js';
import type { Services } from './services.js';
import type { ServiceSpec } from './spec.js';

export type Step =
  | { kind: 'push'; spec: ServiceSpec }
  | { kind: 'scale'; name: string; replicas: number }
  | { kind: 'remove'; name: string }
  | PackageStep
  | AppStep;

/** What planning reads: the node's engine (images), services, apps and packages. */
export interface PlanContext {
  engine: Engine;
  services: Services;
  apps: Apps;
  packages: Packages | undefined;
}

/** The image's digest (hex) on this node; undefined for `host` and directory images. */
export function digestOf(engine: Engine, image: string): string | undefined {
  try {
    return engine.images.resolveDigest(image).replace(/^sha256:/, '');
  } catch {
    return undefined;
  }
}

/** Check every service and say what to do; throws (nothing changed) on the first that cannot be applied. */
export async function planServices(
  o: PlanContext,
  live: Record<string, ManifestEntry>,
  m: Manifest,
  who: string,
  s: ManifestState,
): Promise<Step[]> {
  const steps: Step[] = [];
  const applied = s.current?.manifest.services ?? {};
  for (const [name, entry] of Object.entries(m.services)) {
    const held = o.services.desired.lookup(name);
    if (held && held.owner !== who && !(name in applied))
      throw new RealmError(
        'SERVICE_NAME_TAKEN',
        `services.${name}: a service of ${held.owner} made ad hoc has this name; it is left alone (remove it or rename this one)`,
      );
    if (await o.apps.lookup(name))
      throw new RealmError('SERVICE_NAME_TAKEN', `services.${name}: "${name}" is a wasm app on this gateway; rename the service`);
    const now = live[name];
    const fields = now ? fieldChanges(now, entry).map((f) => f.field) : undefined;
    const scaleOnly = fields?.length === 1 && fields[0] === 'replicas';
    if (isPackaged(entry)) {
      // As an app's module: a package deployed already was checked then (its trees are stored by content).
      if (scaleOnly) steps.push({ kind: 'scale', name, replicas: entry.replicas });
      else if (fields?.length !== 0) steps.push(await planPackage(o.packages, name, entry, who));
      continue;
    }
    try {
      o.engine.sandboxes.resolveImage(entry.image);
    } catch (e) {
      if (e instanceof RealmError) throw new RealmError(e.code, `services.${name}: ${e.message}`);
      throw e;
    }
    if (entry.sha256 !== undefined) {
      const got = digestOf(o.engine, entry.image);
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
    if (!(name in m.services) && o.services.desired.lookup(name)) steps.push({ kind: 'remove', name });
  return steps;
}
