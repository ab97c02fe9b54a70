/**
 * Manifests in TOML: read one (`realm apply`, `realm manifest diff`) with every error naming its
 * key and line, and write the desired state back (`realm manifest export`) in the units people
 * write (512m, 30s), so that the file `export` writes is one `apply` takes.
 */
import { TomlError, parse, stringify } from 'smol-toml';
import { lineOf } from '../jobs/toml-where.js';
import { RealmError } from '../util/errors.js';
import {
  isPackaged,
  manifestFileSchema,
  manifestInvalid,
  normalService,
  type ManifestApp,
  type ManifestEntry,
  type ManifestFileApp,
  type ManifestFilePackageService,
  type ManifestService,
} from './manifest-spec.js';

export interface ManifestFile {
  /** Services of image + command + port, in normal form. */
  services: Record<string, ManifestService>;
  /** Services from a package, as written: `package` (relative to the TOML) and/or `package_sha256`; `realm apply` resolves each to a digest. */
  packaged: Record<string, ManifestFilePackageService>;
  /** As written: `file` (relative to the TOML) and/or `sha256`; `realm apply` resolves each to a digest. */
  apps: Record<string, ManifestFileApp>;
}

/** The services (in normal form), packaged services and apps of a TOML manifest; MANIFEST_INVALID names the key and line of each problem. */
export function parseManifestToml(source: string): ManifestFile {
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (e) {
    if (e instanceof TomlError)
      throw new RealmError('MANIFEST_INVALID', `bad manifest (nothing changed): line ${e.line}: ${e.message.split('\n')[0]}`);
    throw e;
  }
  const r = manifestFileSchema.safeParse(doc);
  if (!r.success) throw manifestInvalid(r.error.issues, doc, (path) => lineOf(source, path));
  const services: Record<string, ManifestService> = {};
  const packaged: Record<string, ManifestFilePackageService> = {};
  for (const [n, s] of Object.entries(r.data.services))
    if ('image' in s) services[n] = normalService(s);
    else packaged[n] = s;
  return { services, packaged, apps: r.data.apps };
}

const KiB = 1024;
const UNITS_SIZE: [number, string][] = [
  [KiB ** 4, 't'],
  [KiB ** 3, 'g'],
  [KiB ** 2, 'm'],
  [KiB, 'k'],
];
const UNITS_TIME: [number, string][] = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'm'],
  [1_000, 's'],
];

/** Bytes as the largest whole unit: 536870912 → "512m". */
export function sizeText(bytes: number): string | number {
  for (const [n, u] of UNITS_SIZE) if (bytes >= n && bytes % n === 0) return `${bytes / n}${u}`;
  return bytes;
}

/** Milliseconds as the largest whole unit: 30000 → "30s", 250 → "250ms". */
export function durationText(ms: number): string {
  for (const [n, u] of UNITS_TIME) if (ms >= n && ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

/** One service as it reads best in TOML: units, and empty env and tags left out (a packaged one: its package by digest). */
function tomlService(s: ManifestEntry): Record<string, unknown> {
  if (isPackaged(s)) return { package_sha256: s.package_sha256, replicas: s.replicas };
  return {
    image: s.image,
    ...(s.sha256 !== undefined ? { sha256: s.sha256 } : {}),
    command: s.command,
    port: s.port,
    replicas: s.replicas,
    memory: sizeText(s.memory),
    cpus: s.cpus,
    pids: s.pids,
    ...(s.tags.length ? { tags: s.tags } : {}),
    visibility: s.visibility,
    ...(Object.keys(s.env).length ? { env: s.env } : {}),
    health: {
      ...(s.health.path !== undefined ? { path: s.health.path } : {}),
      interval: durationText(s.health.interval),
      timeout: durationText(s.health.timeout),
      threshold: s.health.threshold,
    },
    restart: { delay: durationText(s.restart.delay), max_delay: durationText(s.restart.max_delay) },
    ...(s.disconnect ? { disconnect: { stop_after: durationText(s.disconnect.stop_after) } } : {}),
  };
}

/** One app: its module by digest (as services name images: the module stays on the node), limits in units. */
function tomlApp(a: ManifestApp): Record<string, unknown> {
  return {
    sha256: a.sha256,
    memory: sizeText(a.memory),
    ...(a.fuel !== undefined ? { fuel: a.fuel } : {}),
    timeout: durationText(a.timeout),
    visibility: a.visibility,
    replicas: a.replicas,
  };
}

const byName = <T, U>(r: Record<string, T>, f: (v: T) => U): Record<string, U> =>
  Object.fromEntries(
    Object.entries(r)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([n, v]) => [n, f(v)]),
  );

/** A TOML manifest of these services and apps (sorted by name), with a header saying where it came from. */
export function manifestToml(
  services: Record<string, ManifestEntry>,
  header: string[] = [],
  apps: Record<string, ManifestApp> = {},
): string {
  const sorted = byName(services, tomlService);
  const head = header.map((l) => `# ${l}\n`).join('');
  const doc = {
    ...(Object.keys(sorted).length ? { services: sorted } : {}),
    ...(Object.keys(apps).length ? { apps: byName(apps, tomlApp) } : {}),
  };
  const body = Object.keys(doc).length ? stringify(doc) : '[services]\n';
  return `${head}${head ? '\n' : ''}${body.endsWith('\n') ? body : `${body}\n`}`;
}
