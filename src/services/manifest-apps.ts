/**
 * Wasm apps in a signed manifest: what apply does to them. Each app names its module by sha256;
 * the bytes come with the apply (`modules`, read by `realm apply` from the files the TOML names)
 * or are a module the node keeps already, and are hashed again here: nothing runs that is not
 * exactly what was signed. Apps the previous manifest had and this one drops are removed; apps
 * pushed ad hoc and never in a manifest are left alone (as services are, manifest.ts).
 */
import { createHash } from 'node:crypto';
import { DEFAULT_REPLICAS, type Apps } from '../gateway/apps.js';
import type { AppRecord } from '../store/store.js';
import { RealmError } from '../util/errors.js';
import { fieldChanges } from './manifest-diff.js';
import { normalApp, type Manifest, type ManifestApp } from './manifest-spec.js';
import type { Services } from './services.js';

export type AppStep = { kind: 'push-app'; name: string; app: ManifestApp; bytes: Buffer } | { kind: 'remove-app'; name: string };

/** An app record in manifest form. */
export function appOf(rec: AppRecord): ManifestApp {
  return normalApp({
    sha256: rec.sha256,
    memory: rec.memoryBytes,
    ...(rec.fuel !== undefined ? { fuel: rec.fuel } : {}),
    timeout: rec.timeoutMs,
    visibility: rec.visibility,
    replicas: rec.replicas ?? DEFAULT_REPLICAS,
  });
}

const sha256Of = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Every app on the node in manifest form. */
export async function liveApps(apps: Apps): Promise<Record<string, ManifestApp>> {
  return Object.fromEntries((await apps.all()).map((a) => [a.name, appOf(a)]));
}

/**
 * Check every app and say what to do; throws (nothing changed) on the first that cannot be
 * applied: a name another user's ad-hoc app or a service holds, a module that is missing, whose
 * bytes are not the signed digest, or that does not load.
 */
export async function planApps(
  apps: Apps,
  services: Services,
  cur: Manifest | undefined,
  m: Manifest,
  modules: Record<string, string>,
  who: string,
): Promise<AppStep[]> {
  // Every module sent is checked, used or not: a module altered after signing is refused as such.
  const sent = new Map<string, Buffer>();
  for (const [sha, b64] of Object.entries(modules)) {
    const bytes = Buffer.from(b64, 'base64');
    const got = sha256Of(bytes);
    if (got !== sha)
      throw new RealmError(
        'MANIFEST_DIGEST_MISMATCH',
        `a module was sent as sha256:${sha} but its bytes are sha256:${got} (changed after signing?); nothing was changed — run \`realm apply\` again from the module files`,
      );
    sent.set(sha, bytes);
  }
  const steps: AppStep[] = [];
  const live = await liveApps(apps);
  const appliedApps = cur?.apps ?? {};
  for (const [name, entry] of Object.entries(m.apps)) {
    const svc = services.desired.lookup(name);
    if (svc && !(name in (cur?.services ?? {}) && !(name in m.services)))
      throw new RealmError('SERVICE_NAME_TAKEN', `apps.${name}: "${name}" is a service on this node; rename the app`);
    const held = await apps.lookup(name);
    if (held && held.owner !== who && !(name in appliedApps))
      throw new RealmError(
        'APP_NAME_TAKEN',
        `apps.${name}: an app of ${held.owner} pushed ad hoc has this name; it is left alone (remove it or rename this one)`,
      );
    const now = live[name];
    if (now && fieldChanges(now, entry).length === 0) continue;
    const bytes = sent.get(entry.sha256) ?? apps.moduleBySha(entry.sha256);
    if (!bytes)
      throw new RealmError(
        'MANIFEST_DIGEST_MISMATCH',
        `apps.${name}.sha256: this node has no module sha256:${entry.sha256} and none was sent; name its file in the TOML (file = "app.wasm") so \`realm apply\` uploads it`,
      );
    // A kept file is hashed again: what runs is exactly what was signed.
    const got = sha256Of(bytes);
    if (got !== entry.sha256)
      throw new RealmError(
        'MANIFEST_DIGEST_MISMATCH',
        `apps.${name}.sha256: the module is sha256:${got}, not sha256:${entry.sha256} as signed; sign the module you mean to run`,
      );
    try {
      await apps.check(bytes, entry.memory, who);
    } catch (e) {
      if (e instanceof RealmError) throw new RealmError(e.code, `apps.${name}: ${e.message}`);
      throw e;
    }
    steps.push({ kind: 'push-app', name, app: entry, bytes });
  }
  for (const name of Object.keys(appliedApps)) if (!(name in m.apps) && name in live) steps.push({ kind: 'remove-app', name });
  return steps;
}
