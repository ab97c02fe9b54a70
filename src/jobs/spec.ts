/**
 * A job spec: what to run, with what inputs, what to bring back, how to retry, when (cron), and
 * where. Written in TOML (`realm job submit FILE.toml`) or sent as JSON; both go through one
 * schema. A bad spec is refused whole, naming the key and, for TOML, its line.
 *
 * @example
 * parseJobToml('name = "build"\n[run]\ncommand = "make"\n[[artifacts]]\npath = "app"\nname = "app"\n');
 */
import { posix } from 'node:path';
import { TomlError, parse } from 'smol-toml';
import { z } from 'zod';
import { NAME_RE, cpusField, durationField, envField, ruleField, sizeField } from '../engine/schemas.js';
import { RealmError } from '../util/errors.js';
import { checkCron } from './schedule.js';
import { lineOf } from './toml-where.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;
const DAY = 86_400_000;
/** Where a job's command runs unless `working_dir` says otherwise: the sandbox user's home. */
export const DEFAULT_WORKING_DIR = '/home/user';

const SHA256 = /^[0-9a-f]{64}$/;
/** `JOB[#RUN]:NAME`: a job's latest successful run, or one run of it (its number or run id). */
const ARTIFACT_REF = /^([A-Za-z0-9][A-Za-z0-9_.-]{0,62})(?:#([A-Za-z0-9_.-]{1,64}))?:([A-Za-z0-9][A-Za-z0-9_.-]{0,127})$/;
const ARTIFACT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

const relPath = z
  .string()
  .min(1)
  .max(1024)
  .refine((p) => !p.includes('\0'), 'paths cannot contain NUL');

const inputSchema = z
  .object({
    /** `cas:sha256:<hex>`: a blob of the store. */
    source: z
      .string()
      .refine((s) => s.startsWith('cas:sha256:') && SHA256.test(s.slice(11)), 'source is cas:sha256:<64 hex digits>')
      .optional(),
    /** `JOB[#RUN]:NAME`: an artifact of another job's run. */
    artifact: z.string().regex(ARTIFACT_REF, 'artifact is JOB:NAME or JOB#RUN:NAME, e.g. build:app').optional(),
    /** Where it goes: relative to the working directory, or an absolute path inside it. */
    dest: relPath,
    /** Unpack a tar archive (gzip, xz and zstd too) into `dest` as a directory. */
    unpack: z.boolean().default(false),
  })
  .strict()
  .refine((i) => (i.source === undefined) !== (i.artifact === undefined), {
    message: 'an input has exactly one of source (cas:sha256:…) and artifact (JOB:NAME)',
  });

const artifactSchema = z
  .object({
    /** A file or a directory (tarred), relative to the working directory or inside it. */
    path: relPath,
    name: z.string().regex(ARTIFACT_NAME, 'artifact names are letters, digits and _ . - (at most 128)'),
  })
  .strict();

const runSchema = z
  .object({
    driver: z.enum(['namespace', 'gvisor', 'microvm', 'wasm']).optional(),
    image: z.string().min(1).max(4096).optional(),
    language: z.string().min(1).max(64).optional(),
    /** A shell string (run by /bin/sh -c) or an argv array. */
    command: z.union([
      z
        .string()
        .min(1)
        .max(64 * 1024),
      z
        .array(z.string().max(64 * 1024))
        .min(1)
        .max(4096),
    ]),
    env: envField.default({}),
    working_dir: z
      .string()
      .max(1024)
      .regex(/^\/[^\0]*$/, 'working_dir is an absolute path in the sandbox')
      .optional(),
    memory: sizeField(16 * MiB, 256 * GiB).default(512 * MiB),
    cpus: cpusField.default(1),
    pids: z.number().int().min(8).max(1_000_000).default(256),
    disk: sizeField(MiB, 1024 * GiB).default(GiB),
    timeout: durationField(1, 7 * DAY).default(3_600_000),
    network: z.enum(['none', 'all']).default('none'),
    allow: z.array(ruleField).max(256).default([]),
    deny: z.array(ruleField).max(256).default([]),
  })
  .strict()
  .refine((r) => !(r.image && r.language), { message: 'give image or language, not both', path: ['language'] })
  .refine((r) => !(r.network === 'all' && r.allow.length), {
    message: 'network "all" and an allow-list do not go together: give allow rules (network stays none) or network all',
    path: ['allow'],
  })
  .refine((r) => r.allow.length || !r.deny.length, { message: 'deny rules need an allow-list', path: ['deny'] });

const scheduleSchema = z
  .object({
    /** 5-field cron expressions (a 6th leading field of seconds is accepted too). */
    cron: z
      .array(z.string().max(256))
      .min(1)
      .max(16)
      .superRefine((list, ctx) => {
        list.forEach((c, i) => {
          const problem = checkCron(c, 'UTC');
          if (problem) ctx.addIssue({ code: 'custom', message: problem, path: [i] });
        });
      }),
    timezone: z
      .string()
      .max(64)
      .refine((tz) => validZone(tz), 'timezone is an IANA zone name such as UTC or Europe/Berlin')
      .default('UTC'),
    /** A firing while the last run still runs: skip it, queue it (one at most), or run both. */
    overlap: z.enum(['skip', 'queue', 'allow']).default('skip'),
    /** Firings missed while the node was down: none, the latest one, or all of them. */
    missed: z.enum(['skip', 'latest', 'all']).default('skip'),
  })
  .strict();

const retrySchema = z
  .object({
    /** Tries after the first failure (Nomad's batch reschedule default: 1). */
    attempts: z.number().int().min(0).max(100).default(1),
    delay: durationField(0, DAY).default(5_000),
    backoff: z.enum(['constant', 'exponential']).default('constant'),
    max_delay: durationField(0, 7 * DAY).default(3_600_000),
  })
  .strict();

const targetingSchema = z
  .object({
    tags: z
      .array(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:=-]{0,62}$/, 'tags are letters, digits and _ . : = -'))
      .max(32)
      .default([]),
    /** e.g. linux/amd64 */
    platform: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+$/, 'platform is OS/ARCH, e.g. linux/amd64')
      .optional(),
    driver: z.enum(['namespace', 'gvisor', 'microvm', 'wasm']).optional(),
  })
  .strict();

export const jobSpecSchema = z
  .object({
    name: z.string().regex(NAME_RE, 'job names are letters, digits and _ . - (at most 63, starting with a letter or digit)'),
    type: z.enum(['batch', 'cron']).default('batch'),
    schedule: scheduleSchema.optional(),
    run: runSchema,
    inputs: z.array(inputSchema).max(256).default([]),
    artifacts: z.array(artifactSchema).max(256).default([]),
    retry: retrySchema.default({ attempts: 1, delay: 5_000, backoff: 'constant', max_delay: 3_600_000 }),
    targeting: targetingSchema.default({ tags: [] }),
  })
  .strict()
  .refine((j) => (j.type === 'cron') === (j.schedule !== undefined), {
    message: 'a cron job has a [schedule] with cron = ["…"]; a batch job has none',
    path: ['schedule'],
  })
  .superRefine((j, ctx) => {
    // Inputs and artifacts stay inside the working directory: nothing is read from or written
    // over the rest of the sandbox by a path.
    const wd = j.run.working_dir ?? DEFAULT_WORKING_DIR;
    j.inputs.forEach((i, n) => {
      if (!inside(wd, i.dest))
        ctx.addIssue({
          code: 'custom',
          path: ['inputs', n, 'dest'],
          message: `${i.dest} is outside the working directory ${wd}`,
        });
    });
    const names = new Set<string>();
    j.artifacts.forEach((a, n) => {
      if (!inside(wd, a.path))
        ctx.addIssue({
          code: 'custom',
          path: ['artifacts', n, 'path'],
          message: `${a.path} is outside the working directory ${wd}`,
        });
      if (names.has(a.name))
        ctx.addIssue({ code: 'custom', path: ['artifacts', n, 'name'], message: `two artifacts are named ${a.name}` });
      names.add(a.name);
    });
  });
export type JobSpecInput = z.input<typeof jobSpecSchema>;
export type JobSpec = z.output<typeof jobSpecSchema>;

/** Whether `path` (relative to `wd`, or absolute) names something strictly inside `wd`. */
export function inside(wd: string, path: string): boolean {
  const abs = posix.resolve(wd, path);
  return abs.startsWith(`${posix.resolve(wd)}/`);
}

/** The absolute path of an input's dest or an artifact's path. */
export function inWorkingDir(spec: JobSpec, path: string): string {
  return posix.resolve(spec.run.working_dir ?? DEFAULT_WORKING_DIR, path);
}

function validZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** A spec sent as JSON (the API): refused with the key that is wrong. */
export function parseJobSpec(input: unknown): JobSpec {
  const r = jobSpecSchema.safeParse(input);
  if (r.success) return r.data;
  throw invalid(r.error.issues, input, () => undefined);
}

/** A spec written in TOML: refused with the key that is wrong and its line. */
export function parseJobToml(source: string): JobSpec {
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (e) {
    if (e instanceof TomlError) throw new RealmError('JOB_SPEC_INVALID', `line ${e.line}: ${e.message.split('\n')[0]}`);
    throw e;
  }
  const r = jobSpecSchema.safeParse(doc);
  if (r.success) return r.data;
  throw invalid(r.error.issues, doc, (path) => lineOf(source, path));
}

function invalid(issues: z.core.$ZodIssue[], input: unknown, where: (path: PropertyKey[]) => number | undefined): RealmError {
  const said = issues.slice(0, 5).map((i) => {
    // An unknown key is named by itself (zod reports the table it is in).
    const keys = i.code === 'unrecognized_keys' ? i.keys.map((k) => [...i.path, k]) : [i.path];
    return keys
      .map((path) => {
        const key = path
          .map((p) => (typeof p === 'number' ? `[${p}]` : String(p)))
          .join('.')
          .replace(/\.\[/g, '[');
        const line = where(path);
        const message =
          i.code === 'unrecognized_keys'
            ? 'unknown key'
            : i.path.length && valueAt(input, i.path) === undefined && i.code !== 'custom'
              ? 'required, missing'
              : i.message;
        return `${line ? `line ${line}: ` : ''}${key || 'the spec'}: ${message}`;
      })
      .join('; ');
  });
  return new RealmError('JOB_SPEC_INVALID', `bad job spec (nothing submitted): ${said.join('; ')}`);
}

function valueAt(doc: unknown, path: readonly PropertyKey[]): unknown {
  let v = doc;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  return v;
}
