/**
 * A package's manifest, `realm-package.toml` at the root of a `.realm` file: the package's name and
 * version, the service it runs (a wasm component file in the package, or an image + command +
 * port) and the mounts each replica gets, seeded from directories in the package.
 *
 *   name = "site"
 *   version = "1.2.0"
 *   [service]
 *   image = "host"
 *   command = "python3 -m http.server 8000 --directory /srv/site"
 *   port = 8000
 *   disconnect = { stopAfter = "30s" }   # optional, in a cluster (as for realm push)
 *   [[mounts]]
 *   kind = "static"          # static | config | work | state
 *   path = "/srv/site"       # where it is in each replica's sandbox
 *   source = "site"          # a directory in the package (static, config: required; state: its seed)
 *
 * Everything here is checked before anything is written: a bad manifest is PACKAGE_INVALID naming
 * the key (and its line), never half a deployment.
 */
import { posix } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';
import { cpusField, envField, sizeField } from '../engine/schemas.js';
import { lineOf } from '../jobs/toml-where.js';
import { disconnectSchema, healthSchema, restartSchema, MAX_SERVICE_REPLICAS } from '../services/spec.js';
import { APP_NAME } from '../gateway/apps.js';
import { RealmError } from '../util/errors.js';

export const MANIFEST_FILE = 'realm-package.toml';
export const MOUNT_KINDS = ['static', 'config', 'work', 'state'] as const;
export type MountKind = (typeof MOUNT_KINDS)[number];

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** Paths a mount may not be at or under: the sandbox's own (as for volumes, engine/volumes.ts). */
const RESERVED = ['/proc', '/sys', '/dev', '/tmp', '/.realm', '/usr', '/etc', '/home/user', '/bin', '/sbin', '/lib', '/lib64'];

/** A path in the package: relative, normalized, no `..`. */
const packagePath = z
  .string()
  .min(1)
  .max(1024)
  .refine(
    (p) =>
      !p.includes('\0') &&
      !p.startsWith('/') &&
      posix.normalize(p.replace(/\/+$/, '')) === p.replace(/\/+$/, '') &&
      !p.split('/').includes('..') &&
      p !== '.',
    'a path in the package is relative, without "..", "." or doubled slashes (e.g. "site" or "assets/config")',
  )
  .transform((p) => p.replace(/\/+$/, ''));

/** Where a mount goes in the sandbox: absolute, normalized, not the sandbox's own directories. */
const sandboxPath = z
  .string()
  .max(1024)
  .refine(
    (p) => p.startsWith('/') && !p.includes('\0') && posix.normalize(p) === p && p !== '/' && !p.endsWith('/'),
    'a mount path is an absolute path inside the sandbox without "..", "." or a trailing slash (e.g. /srv/site)',
  )
  .refine(
    (p) => !RESERVED.some((r) => p === r || p.startsWith(`${r}/`)),
    `a mount path may not be at or under ${RESERVED.join(', ')} (the sandbox's own); use e.g. /srv/NAME or /data`,
  );

const mountSchema = z
  .object({
    kind: z.enum(MOUNT_KINDS, { error: `a mount kind is one of ${MOUNT_KINDS.join(', ')}` }),
    path: sandboxPath,
    /** A directory in the package: what static and config mounts hold, a state mount's first contents. */
    source: packagePath.optional(),
    /** Names the state volume across versions (default: from the path). */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'a mount name is 1-32 of a-z, 0-9, _ and -')
      .optional(),
  })
  .strict()
  .superRefine((m, ctx) => {
    if ((m.kind === 'static' || m.kind === 'config') && !m.source)
      ctx.addIssue({ code: 'custom', path: ['source'], message: `a ${m.kind} mount needs a source directory in the package` });
    if (m.kind === 'work' && m.source)
      ctx.addIssue({ code: 'custom', path: ['source'], message: 'a work mount starts empty: it takes no source' });
  });
export type PackageMount = z.output<typeof mountSchema>;

const serviceSchema = z
  .object({
    /** A wasm component (WASI HTTP) in the package: served by the gateway as an app. */
    component: packagePath.optional(),
    image: z.string().min(1).max(4096).optional(),
    command: z
      .string()
      .min(1)
      .max(64 * 1024)
      .optional(),
    port: z.number().int().min(1).max(65535).optional(),
    replicas: z.number().int().min(0).max(MAX_SERVICE_REPLICAS).optional(),
    memory: sizeField(16 * MiB, 256 * GiB).optional(),
    cpus: cpusField.optional(),
    pids: z.number().int().min(8).max(1_000_000).optional(),
    env: envField.optional(),
    tags: z.array(z.string()).max(32).optional(),
    visibility: z.enum(['local', 'public']).optional(),
    health: healthSchema.optional(),
    restart: restartSchema.optional(),
    /** In a cluster: stop the replicas on a node cut off from etcd after this long (as for a push). */
    disconnect: disconnectSchema.optional(),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.component !== undefined) {
      for (const k of ['image', 'command', 'port', 'memory', 'cpus', 'pids', 'env', 'health', 'restart', 'disconnect'] as const)
        if (s[k] !== undefined)
          ctx.addIssue({ code: 'custom', path: [k], message: `a component service takes no ${k} (that is for image services)` });
      return;
    }
    for (const k of ['image', 'command', 'port'] as const)
      if (s[k] === undefined)
        ctx.addIssue({
          code: 'custom',
          path: [k],
          message: `the service needs ${k} (or a component file instead of image, command and port)`,
        });
  });

export const manifestSchema = z
  .object({
    name: z.string().regex(APP_NAME, 'a package name is 1-63 of a-z, 0-9 and -, starting with a letter or digit'),
    version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$/, 'a version is 1-64 of letters, digits and . _ + -'),
    description: z.string().max(1024).optional(),
    service: serviceSchema,
    mounts: z.array(mountSchema).max(16).default([]),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.service.component !== undefined && m.mounts.length)
      ctx.addIssue({
        code: 'custom',
        path: ['mounts'],
        message: 'mounts need an image service (a component has no filesystem to mount them in)',
      });
    const names = new Set<string>();
    m.mounts.forEach((a, i) => {
      m.mounts.forEach((b, j) => {
        if (i < j && (a.path === b.path || a.path.startsWith(`${b.path}/`) || b.path.startsWith(`${a.path}/`)))
          ctx.addIssue({
            code: 'custom',
            path: ['mounts', j, 'path'],
            message: `mount paths ${a.path} and ${b.path} overlap; give each its own directory`,
          });
      });
      if (a.kind === 'state') {
        const n = stateName(a);
        if (names.has(n))
          ctx.addIssue({
            code: 'custom',
            path: ['mounts', i, 'name'],
            message: `two state mounts are named ${n}; give each its own name`,
          });
        names.add(n);
      }
    });
  });
export type PackageManifest = z.output<typeof manifestSchema>;

/** A state mount's name: its own, or its path's last part. */
export function stateName(m: Pick<PackageMount, 'name' | 'path'>): string {
  return (
    m.name ??
    (posix
      .basename(m.path)
      .toLowerCase()
      .replace(/[^a-z0-9_-]/g, '-')
      .slice(0, 32) ||
      'state')
  );
}

/** Every directory (and file) the manifest names in the package: key → path. */
export function assetsOf(m: PackageManifest): { key: string; path: string; dir: boolean }[] {
  const out: { key: string; path: string; dir: boolean }[] = [];
  if (m.service.component) out.push({ key: 'service.component', path: m.service.component, dir: false });
  m.mounts.forEach((mt, i) => {
    if (mt.source) out.push({ key: `mounts[${i}].source`, path: mt.source, dir: true });
  });
  return out;
}

export function invalid(message: string, details?: Record<string, unknown>): RealmError {
  return new RealmError('PACKAGE_INVALID', message, details);
}

/** Parse and check a manifest's text; PACKAGE_INVALID naming the key (and its line) otherwise. */
export function parseManifest(text: string): PackageManifest {
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (e) {
    throw invalid(`${MANIFEST_FILE} is not valid TOML: ${(e as Error).message.split('\n')[0] ?? ''}`);
  }
  const r = manifestSchema.safeParse(doc);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const path = issue?.path ?? [];
  const key = path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`)).join('') || '(document)';
  const line = lineOf(text, issue?.code === 'unrecognized_keys' ? [...path, issue.keys[0] ?? ''] : path);
  const msg =
    issue?.code === 'unrecognized_keys'
      ? `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}${key === '(document)' ? '' : ` in ${key}`}; remove ${issue.keys.length > 1 ? 'them' : 'it'}`
      : `${key}: ${issue?.message ?? 'invalid'}`;
  throw invalid(`${MANIFEST_FILE}${line ? ` line ${line}` : ''}: ${msg}`, { key, ...(line ? { line } : {}) });
}
