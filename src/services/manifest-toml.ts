/**
 * Manifests in TOML: read one (`realm apply`, `realm manifest diff`) with every error naming its
 * key and line, and write the desired state back (`realm manifest export`) in the units people
 * write (512m, 30s), so that the file `export` writes is one `apply` takes.
 */
import { TomlError, parse, stringify } from 'smol-toml';
import { lineOf } from '../jobs/toml-where.js';
import { RealmError } from '../util/errors.js';
import { manifestFileSchema, manifestInvalid, normalService, type ManifestService } from './manifest-spec.js';

/** The services of a TOML manifest, in normal form; MANIFEST_INVALID names the key and line of each problem. */
export function parseManifestToml(source: string): Record<string, ManifestService> {
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
  return Object.fromEntries(Object.entries(r.data.services).map(([n, s]) => [n, normalService(s)]));
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

/** One service as it reads best in TOML: units, and empty env and tags left out. */
function tomlService(s: ManifestService): Record<string, unknown> {
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
  };
}

/** A TOML manifest of these services (sorted by name), with a header saying where it came from. */
export function manifestToml(services: Record<string, ManifestService>, header: string[] = []): string {
  const sorted = Object.fromEntries(
    Object.entries(services)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([n, s]) => [n, tomlService(s)]),
  );
  const head = header.map((l) => `# ${l}\n`).join('');
  const body = Object.keys(sorted).length ? stringify({ services: sorted }) : '[services]\n';
  return `${head}${head ? '\n' : ''}${body.endsWith('\n') ? body : `${body}\n`}`;
}
