/**
 * A manifest: the desired state of a node's services and wasm apps, signed by the owner (`realm
 * apply`). Written in TOML (one `[services.NAME]` or `[apps.NAME]` table each, snake_case keys; an
 * app's module is signed as its sha256) and signed in a normal form: every
 * field explicit, sizes in bytes and durations in ms, so the signature covers exactly what runs
 * whatever the defaults of the node. Unknown keys and wrong types are refused, naming the key.
 *
 * @example
 * [services.web]
 * image = "host"
 * command = "python3 -m http.server 8000"
 * port = 8000
 * replicas = 2
 *
 * [services.site]
 * package = "site-1.0.0.realm"   # relative to the TOML; realm apply signs its sha256 and uploads it
 * replicas = 2
 *
 * [apps.hello]
 * file = "hello.wasm"   # relative to the TOML; realm apply signs its sha256 and uploads it
 * memory = "32m"
 */
import { z } from 'zod';
import { cpusField, durationField, envField, sizeField } from '../engine/schemas.js';
import { RealmError } from '../util/errors.js';
import { APP_NAME, pushAppSchema } from '../gateway/apps.js';
import { MAX_SERVICE_REPLICAS, MIN_LEASE_TTL_MS, healthSchema, pushServiceSchema, type ServiceSpec } from './spec.js';

/** What a signed manifest says it is (a signature for another kind of payload is not valid for it). */
export const MANIFEST_KIND = 'realm-manifest';

const SHA256 = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lowercase hex digits (`realm image ls` shows an image's digest)");

/**
 * One service of a manifest; the limits and defaults are those of `realm push` (spec.ts), and a
 * manifest service is checked again as a push (specOf) before anything is applied.
 */
export const manifestServiceSchema = z
  .object({
    image: z.string().min(1).max(4096),
    /** The image's manifest digest: the node refuses the manifest unless `image` is exactly this. */
    sha256: SHA256.optional(),
    command: z
      .string()
      .min(1)
      .max(64 * 1024),
    port: z.number().int().min(1).max(65535),
    replicas: z.number().int().min(0).max(MAX_SERVICE_REPLICAS).default(1),
    memory: sizeField(16 * 1024 ** 2, 256 * 1024 ** 3).default(512 * 1024 ** 2),
    cpus: cpusField.default(1),
    pids: z.number().int().min(8).max(1_000_000).default(256),
    env: envField.default({}),
    tags: z
      .array(z.string().regex(/^[A-Za-z0-9_.:=-]{1,63}$/, 'tags are 1-63 of letters, digits and _ . : = -'))
      .max(32)
      .default([]),
    visibility: z.enum(['local', 'public']).default('local'),
    health: healthSchema.prefault({}),
    restart: z
      .object({
        delay: durationField(0, 3_600_000).default(30_000),
        max_delay: durationField(0, 24 * 3_600_000).default(3_600_000),
      })
      .strict()
      .prefault({}),
    /** Absent: replicas keep running on a node cut off from etcd (spec.ts disconnectSchema). */
    disconnect: z
      .object({ stop_after: durationField(MIN_LEASE_TTL_MS, 7 * 24 * 3_600_000) })
      .strict()
      .optional(),
  })
  .strict();
export type ManifestService = z.output<typeof manifestServiceSchema>;

/**
 * A service from a package (`realm package create`): its image, command, port, limits, health and
 * mounts are the package's (its realm-package.toml), named by the sha256 of the `.realm` file, so
 * the signature covers them; the manifest says how many replicas (default 1, as for any service).
 */
export const manifestPackageServiceSchema = z
  .object({
    /** The `.realm` file's sha256: the node refuses the manifest unless the package it deploys has exactly these bytes. */
    package_sha256: SHA256,
    replicas: z.number().int().min(0).max(MAX_SERVICE_REPLICAS).default(1),
  })
  .strict();
export type ManifestPackageService = z.output<typeof manifestPackageServiceSchema>;

/** A packaged service in the TOML file: `package` (relative to the TOML) is what `realm apply` hashes and uploads; `package_sha256` alone names a package the node has. */
export const manifestFilePackageServiceSchema = manifestPackageServiceSchema
  .extend({
    package: z.string().min(1).max(4096).optional(),
    package_sha256: SHA256.optional(),
  })
  .strict();
export type ManifestFilePackageService = z.output<typeof manifestFilePackageServiceSchema>;

/** A service of a manifest, in signed form: image + command + port, or a package. */
export type ManifestEntry = ManifestService | ManifestPackageService;

/** Whether a service in signed form comes from a package. */
export const isPackaged = (s: ManifestEntry): s is ManifestPackageService => 'package_sha256' in s;

const PACKAGE_KEYS = ['package', 'package_sha256'];

/**
 * A `[services.NAME]` table: checked as a packaged service when it names a package (`package` or
 * `package_sha256`), else as image + command + port; the errors are that schema's alone (a
 * union's would list both), and a key a packaged service does not take says why.
 */
function serviceEntry<P extends z.ZodType, S extends z.ZodType>(packaged: P, plain: S, takes: string) {
  return z.unknown().transform((v, ctx): z.output<P> | z.output<S> => {
    const pkg = typeof v === 'object' && v !== null && PACKAGE_KEYS.some((k) => k in v);
    const r = pkg ? packaged.safeParse(v) : plain.safeParse(v);
    if (r.success) return r.data;
    for (const i of r.error.issues) {
      if (pkg && i.code === 'unrecognized_keys')
        for (const k of i.keys)
          ctx.addIssue({
            code: 'custom',
            path: [...i.path, k],
            message: `a service from a package takes only ${takes}: its image, command, port, limits, health and mounts are the package's`,
          });
      else ctx.addIssue(i as Parameters<typeof ctx.addIssue>[0]);
    }
    return z.NEVER;
  });
}
const signedService = serviceEntry(manifestPackageServiceSchema, manifestServiceSchema, 'package_sha256 and replicas');

const serviceName = z
  .string()
  .refine(
    (n) => APP_NAME.test(n),
    'a service name is 1-63 of a-z, 0-9 and -, starting with a letter or digit (it is a URL path segment)',
  );

/**
 * One wasm app (a WASI CGI module or a wasi:http component, as `realm push --file` deploys) in
 * signed form: its module named by sha256, and the limits of `realm push`.
 */
export const manifestAppSchema = pushAppSchema
  .omit({ name: true, module: true })
  .extend({
    /** The module's sha256: the node refuses the manifest unless the module it runs has exactly these bytes. */
    sha256: SHA256,
  })
  .strict();
export type ManifestApp = z.output<typeof manifestAppSchema>;

/** An app in the TOML file: `file` (relative to the TOML) is what `realm apply` hashes and uploads; `sha256` alone names a module the node has. */
export const manifestFileAppSchema = manifestAppSchema
  .extend({
    file: z.string().min(1).max(4096).optional(),
    sha256: SHA256.optional(),
  })
  .strict()
  .refine((a) => a.file !== undefined || a.sha256 !== undefined, 'name the module: file = "app.wasm" (or its sha256)');
export type ManifestFileApp = z.output<typeof manifestFileAppSchema>;

const limits = (m: { services: Record<string, unknown>; apps: Record<string, unknown> }, ctx: z.core.$RefinementCtx): void => {
  if (Object.keys(m.services).length > 256) ctx.addIssue({ code: 'custom', message: 'at most 256 services in one manifest' });
  if (Object.keys(m.apps).length > 256) ctx.addIssue({ code: 'custom', message: 'at most 256 apps in one manifest' });
  for (const n of Object.keys(m.apps))
    if (n in m.services)
      ctx.addIssue({
        code: 'custom',
        path: ['apps', n],
        message: `"${n}" is both a service and an app; the gateway serves one thing per name, rename one`,
      });
};

/** The TOML file (`realm apply --file`): services and apps; the version comes from `--version`. */
export const manifestFileSchema = z
  .object({
    services: z
      .record(
        serviceName,
        serviceEntry(manifestFilePackageServiceSchema, manifestServiceSchema, 'package, package_sha256 and replicas'),
      )
      .default({}),
    apps: z.record(serviceName, manifestFileAppSchema).default({}),
  })
  .strict()
  .superRefine(limits);

/** What `realm manifest diff` posts: the file's services and apps, each package and app module resolved to its sha256. */
export const manifestDiffInputSchema = z
  .object({
    services: z.record(serviceName, signedService).default({}),
    apps: z.record(serviceName, manifestAppSchema).default({}),
  })
  .strict()
  .superRefine(limits);

/** The signed document, as posted to the node. */
export const signedManifestSchema = z
  .object({
    kind: z.literal(MANIFEST_KIND),
    version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
    services: z.record(serviceName, signedService),
    /** Absent in manifests signed before apps could be in one: none. */
    apps: z.record(serviceName, manifestAppSchema).default({}),
  })
  .strict()
  .superRefine(limits);
export type Manifest = z.output<typeof signedManifestSchema>;

/** The normal form of one service: every field explicit and in base units (what is signed and compared). */
export function normalService(s: ManifestService): ManifestService {
  const out: ManifestService = {
    image: s.image,
    command: s.command,
    port: s.port,
    replicas: s.replicas,
    memory: s.memory,
    cpus: s.cpus,
    pids: s.pids,
    env: s.env,
    tags: s.tags,
    visibility: s.visibility,
    health: {
      interval: s.health.interval,
      timeout: s.health.timeout,
      threshold: s.health.threshold,
      ...(s.health.path !== undefined ? { path: s.health.path } : {}),
    },
    restart: { delay: s.restart.delay, max_delay: s.restart.max_delay },
  };
  // Only when set: manifests signed before the option are the same documents.
  if (s.disconnect !== undefined) out.disconnect = { stop_after: s.disconnect.stop_after };
  if (s.sha256 !== undefined) out.sha256 = s.sha256;
  return out;
}

/** The normal form of one service, from a package or not. */
export function normalEntry<S extends ManifestEntry>(s: S): S {
  return (isPackaged(s) ? { package_sha256: s.package_sha256, replicas: s.replicas } : normalService(s)) as S;
}

/** The normal form of one app (what is signed and compared). */
export function normalApp(a: ManifestApp): ManifestApp {
  return {
    sha256: a.sha256,
    memory: a.memory,
    ...(a.fuel !== undefined ? { fuel: a.fuel } : {}),
    timeout: a.timeout,
    visibility: a.visibility,
    replicas: a.replicas,
  };
}

/** The manifest to sign: the file's services and apps (packages and modules resolved to digests) in normal form, with the version. */
export function manifestOf<S extends ManifestEntry>(
  services: Record<string, S>,
  version: number,
  apps: Record<string, ManifestApp> = {},
): Manifest & { services: Record<string, S> } {
  return {
    kind: MANIFEST_KIND,
    version,
    services: Object.fromEntries(Object.entries(services).map(([n, s]) => [n, normalEntry(s)])),
    apps: Object.fromEntries(Object.entries(apps).map(([n, a]) => [n, normalApp(a)])),
  };
}

/** A manifest service as a push (`realm push` takes the same spec). */
export function specOf(name: string, s: ManifestService): ServiceSpec {
  return pushServiceSchema.parse({
    name,
    image: s.image,
    command: s.command,
    port: s.port,
    replicas: s.replicas,
    memory: s.memory,
    cpus: s.cpus,
    pids: s.pids,
    env: s.env,
    tags: s.tags,
    visibility: s.visibility,
    health: s.health,
    restart: { delay: s.restart.delay, maxDelay: s.restart.max_delay },
    ...(s.disconnect ? { disconnect: { stopAfter: s.disconnect.stop_after } } : {}),
  });
}

/** A running service's desired state in manifest form (export, drift); `sha256` when known. */
export function serviceOf(spec: ServiceSpec, sha256?: string): ManifestService {
  return normalService({
    image: spec.image,
    ...(sha256 !== undefined ? { sha256 } : {}),
    command: spec.command,
    port: spec.port,
    replicas: spec.replicas,
    memory: spec.memory,
    cpus: spec.cpus,
    pids: spec.pids,
    env: spec.env,
    tags: spec.tags,
    visibility: spec.visibility,
    health: spec.health,
    restart: { delay: spec.restart.delay, max_delay: spec.restart.maxDelay },
    ...(spec.disconnect ? { disconnect: { stop_after: spec.disconnect.stopAfter } } : {}),
  });
}

/**
 * Refused input, naming each key that is wrong (and its line, given `where`): the stable code
 * MANIFEST_INVALID whatever the key.
 */
export function manifestInvalid(
  issues: readonly z.core.$ZodIssue[],
  input: unknown,
  where: (path: PropertyKey[]) => number | undefined = () => undefined,
): RealmError {
  const said = issues.slice(0, 5).flatMap((i) => {
    // An unknown key is named by itself (zod reports the table it is in).
    const paths = i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k]) : [i.path];
    return paths.map((path) => {
      const key = path.map((p) => (typeof p === 'number' ? `[${p}]` : String(p))).join('.');
      const line = where(path);
      const message =
        i.code === 'unrecognized_keys'
          ? 'unknown key'
          : i.code === 'invalid_key'
            ? (i.issues[0]?.message ?? i.message)
            : path.length && valueAt(input, path) === undefined && i.code !== 'custom'
              ? 'required, missing'
              : i.message;
      return `${line ? `line ${line}: ` : ''}${key || 'the manifest'}: ${message}`;
    });
  });
  return new RealmError('MANIFEST_INVALID', `bad manifest (nothing changed): ${said.join('; ')}`);
}

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let v = doc;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}
