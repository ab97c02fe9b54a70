/**
 * Input schemas for everything the engine accepts, validated once at the edge (API, CLI).
 * Limits use the units people write: `512m`, `2g`, `10s`, `1.5` (cpus).
 */
import { z } from 'zod';
import { parseCpus, parseDuration, parseSize } from '../util/units.js';
import { parseRule } from '../net/policy.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** A unit field's message when it is missing or not a string or number (zod says just "Invalid input"). */
const unitInput =
  (what: string, example: string) =>
  (iss: { input?: unknown }): string =>
    iss.input === undefined
      ? `missing: write ${what} (e.g. ${example})`
      : `${what} is a string such as ${example} or a number, not ${Array.isArray(iss.input) ? 'an array' : typeof iss.input}`;

export function sizeField(min: number, max: number) {
  return z.union([z.string().max(32), z.number()], { error: unitInput('a size', '512m') }).transform((v, ctx) => {
    const n = parseSize(v);
    if (n === null) {
      ctx.addIssue({
        code: 'custom',
        message: `"${String(v)}" is not a size; write bytes or a number with k, m or g (e.g. 512m)`,
      });
      return z.NEVER;
    }
    if (n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `${String(v)} is outside ${fmt(min)}..${fmt(max)}` });
      return z.NEVER;
    }
    return n;
  });
}

export function durationField(min: number, max: number) {
  return z.union([z.string().max(32), z.number()], { error: unitInput('a duration', '10s') }).transform((v, ctx) => {
    const n = parseDuration(v);
    if (n === null) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" is not a duration; write e.g. 500ms, 10s, 5m, 1h` });
      return z.NEVER;
    }
    if (n < min || n > max) {
      ctx.addIssue({ code: 'custom', message: `${String(v)} is outside ${min}ms..${max}ms` });
      return z.NEVER;
    }
    return n;
  });
}

export const cpusField = z
  .union([z.string().max(16), z.number()], { error: unitInput('a number of CPUs', '1.5') })
  .transform((v, ctx) => {
    const n = parseCpus(v);
    if (n === null || n < 0.01 || n > 256) {
      ctx.addIssue({ code: 'custom', message: `"${String(v)}" must be a number of CPUs between 0.01 and 256 (e.g. 1.5)` });
      return z.NEVER;
    }
    return n;
  });

function fmt(n: number): string {
  return n >= GiB ? `${n / GiB}g` : n >= MiB ? `${n / MiB}m` : `${n}`;
}

const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const envField = z
  .record(
    z.string().regex(ENV_KEY, 'environment variable names are letters, digits and _'),
    z
      .string()
      .max(32 * 1024)
      .refine((v) => !v.includes('\0'), 'environment values cannot contain NUL'),
  )
  .refine((e) => Object.keys(e).length <= 256, 'at most 256 environment variables');

/**
 * Names a workspace's sandbox and volume have (`ws-NAME`), and labels realm keeps for itself:
 * only Workspaces makes them (a workspace is known by its record's kind, never by these; they
 * are refused here so that no tenant holds a name a workspace will want).
 */
export const RESERVED_NAME = /^ws-/i;
const RESERVED_LABEL = /^realm\./i;

const LABEL_KEY = /^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$/;
const labelsField = z
  .record(
    z
      .string()
      .regex(LABEL_KEY, 'label keys are letters, digits and _ . / - (at most 63)')
      .refine((k) => !RESERVED_LABEL.test(k), 'label keys starting with realm. are kept for realm itself; pick another key'),
    z.string().max(256),
  )
  .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels');

export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const SANDBOX_PATH = /^\/[^\0]*$/;

const volumeSpec = z
  .object({
    volume: z
      .string()
      .regex(NAME_RE, 'volume names are letters, digits and _ . - (at most 63, starting with a letter or digit)')
      .refine(
        (n) => !RESERVED_NAME.test(n),
        "volume names starting with ws- are workspaces' clones, mounted only in their own workspace; pick another volume name",
      ),
    path: z.string().max(1024).regex(SANDBOX_PATH, 'volume paths must be absolute paths inside the sandbox'),
    readOnly: z.boolean().default(false),
  })
  .strict();

export const ruleField = z
  .string()
  .max(300)
  .refine(
    (r) => parseRule(r) !== null,
    'network rules look like api.example.com, *.example.com:443, 10.0.0.5:8080 or [2001:db8::1]:443',
  );

/** Where in a cluster the work goes: the node named, or one with every tag (see cluster/placement.ts). */
export const placementField = z
  .object({
    node: z.string().max(63).optional(),
    tags: z.array(z.string().max(63)).max(32).default([]),
    /** `OS/ARCH`, e.g. linux/amd64 (the same as linux/x86_64). */
    platform: z
      .string()
      .regex(/^[a-z0-9]+\/[a-z0-9_]+$/, 'placement.platform is OS/ARCH, e.g. linux/amd64 or linux/arm64')
      .optional(),
  })
  .strict()
  .optional();

export const createSandboxSchema = z
  .object({
    placement: placementField,
    image: z.string().min(1).max(4096).default('host'),
    /** Isolation; the node's default (namespace unless configured) when left out. */
    driver: z.enum(['namespace', 'gvisor', 'microvm', 'wasm']).optional(),
    name: z
      .string()
      .regex(NAME_RE, 'sandbox names are letters, digits and _ . - (at most 63, starting with a letter or digit)')
      .refine(
        (n) => !RESERVED_NAME.test(n),
        'sandbox names starting with ws- are kept for workspaces; pick another name, or make a workspace with `realm ws NAME` (POST /v1/workspaces)',
      )
      .optional(),
    memory: sizeField(16 * MiB, 256 * GiB).default(512 * MiB),
    cpus: cpusField.default(1),
    pids: z.number().int().min(8).max(1_000_000).default(256),
    disk: sizeField(MiB, 1024 * GiB).default(GiB),
    tmp: sizeField(MiB, 1024 * GiB).default(256 * MiB),
    network: z.enum(['none', 'all']).default('none'),
    /** Reach only these destinations, through a filtering proxy outside the sandbox. */
    allow: z.array(ruleField).max(256).default([]),
    /** Never these (wins over allow). */
    deny: z.array(ruleField).max(256).default([]),
    /** Headers the proxy adds to plain HTTP requests to a host; the sandbox never sees them. */
    inject: z
      .array(
        z
          .object({
            host: ruleField,
            header: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'header names are letters, digits and -'),
            value: z
              .string()
              .max(8192)
              .refine((v) => !/[\r\n\0]/.test(v), 'header values cannot hold CR, LF or NUL'),
          })
          .strict(),
      )
      .max(32)
      .default([]),
    volumes: z.array(volumeSpec).max(32).default([]),
    env: envField.default({}),
    labels: labelsField.default({}),
    /** Time to live; 0 means no expiry. */
    ttl: durationField(0, 365 * 86_400_000).default(3_600_000),
  })
  .strict()
  .refine((o) => !(o.network === 'all' && o.allow.length), {
    message: 'network "all" and an allow-list do not go together: give allow rules (network stays none) or network all',
    path: ['allow'],
  })
  .refine((o) => o.allow.length || (!o.deny.length && !o.inject.length), {
    message: 'deny and inject rules need an allow-list',
    path: ['deny'],
  });
export type CreateSandboxInput = z.input<typeof createSandboxSchema>;
export type CreateSandboxOptions = z.output<typeof createSandboxSchema>;

/** Changes to a live sandbox: a new time to live (from now; 0 for none), labels to set. */
export const updateSandboxSchema = z
  .object({
    ttl: durationField(0, 365 * 86_400_000).optional(),
    labels: labelsField.optional(),
  })
  .strict();
export type UpdateSandboxOptions = z.output<typeof updateSandboxSchema>;

const SIGNALS = ['SIGTERM', 'SIGKILL', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGSTOP', 'SIGCONT'] as const;
export const signalSchema = z.object({ signal: z.enum(SIGNALS).default('SIGTERM') }).strict();

export const execSchema = z
  .object({
    /** argv, or a shell command string run with /bin/sh -c. */
    command: z.union([
      z
        .array(z.string().max(128 * 1024))
        .min(1)
        .max(4096),
      z
        .string()
        .min(1)
        .max(256 * 1024),
    ]),
    env: envField.default({}),
    cwd: z.string().max(4096).regex(SANDBOX_PATH, 'cwd must be an absolute path inside the sandbox').default('/home/user'),
    stdin: z
      .string()
      .max(64 * MiB)
      .optional(),
    timeout: durationField(1, 24 * 3_600_000).default(60_000),
    memory: sizeField(16 * MiB, 256 * GiB).optional(),
    pids: z.number().int().min(1).max(1_000_000).optional(),
    cpus: cpusField.optional(),
    output: sizeField(1, 1024 * MiB).default(16 * MiB),
    /** wasm sandboxes: the exec's instruction budget (Wasmtime fuel); past it the verdict is `fuel-exhausted`. */
    fuel: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict();
export type ExecInput = z.input<typeof execSchema>;
export type ExecOptions = z.output<typeof execSchema>;

/** A background process: started detached, output kept for reconnects. */
export const startProcessSchema = z
  .object({
    command: execSchema.shape.command,
    /** On a pseudo-terminal (attach to it over WebSocket; detaching leaves it running). */
    tty: z.boolean().default(false),
    rows: z.number().int().min(1).max(1000).default(24),
    cols: z.number().int().min(1).max(1000).default(80),
    env: envField.default({}),
    cwd: z.string().max(4096).regex(SANDBOX_PATH, 'cwd must be an absolute path inside the sandbox').default('/home/user'),
    memory: sizeField(16 * MiB, 256 * GiB).optional(),
    pids: z.number().int().min(1).max(1_000_000).optional(),
    cpus: cpusField.optional(),
  })
  .strict();
export type StartProcessOptions = z.output<typeof startProcessSchema>;

export const processInputSchema = z
  .object({
    data: z
      .string()
      .max(16 * MiB)
      .default(''),
    close: z.boolean().default(false),
  })
  .strict();

/** First message of an interactive exec (WebSocket). */
export const interactiveSchema = z
  .object({
    type: z.literal('start'),
    command: execSchema.shape.command,
    env: envField.default({}),
    cwd: z.string().max(4096).regex(SANDBOX_PATH, 'cwd must be an absolute path inside the sandbox').default('/home/user'),
    tty: z.boolean().default(true),
    rows: z.number().int().min(1).max(1000).default(24),
    cols: z.number().int().min(1).max(1000).default(80),
  })
  .strict();
export type InteractiveOptions = z.output<typeof interactiveSchema>;

/** Messages during an interactive exec. */
export const interactiveMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdin'), data: z.string().max(1024 * 1024) }),
  z.object({ type: z.literal('eof') }),
  z.object({ type: z.literal('resize'), rows: z.number().int().min(1).max(1000), cols: z.number().int().min(1).max(1000) }),
  z.object({ type: z.literal('signal'), signal: signalSchema.shape.signal }),
]);

const fileSpec = z
  .object({
    name: z.string().min(1).max(255).optional(),
    content: z.string().max(16 * MiB),
    /** How `content` is written: text as UTF-8 (default), or bytes sent as base64 or hex. */
    encoding: z.enum(['utf8', 'base64', 'hex']).default('utf8'),
  })
  .strict();

export const runSchema = z
  .object({
    placement: placementField,
    language: z.string().min(1).max(64),
    /** Isolation for the run's sandbox; the node's default when left out. */
    driver: z.enum(['namespace', 'gvisor', 'microvm', 'wasm']).optional(),
    /** Source of the main file; or give `files` (the first is the main file). */
    code: z
      .string()
      .max(16 * MiB)
      .optional(),
    files: z.array(fileSpec).max(64).optional(),
    stdin: z
      .string()
      .max(64 * MiB)
      .default(''),
    args: z
      .array(z.string().max(64 * 1024))
      .max(1024)
      .default([]),
    timeout: durationField(1, 3_600_000).default(10_000),
    compileTimeout: durationField(1, 3_600_000).default(30_000),
    memory: sizeField(16 * MiB, 64 * GiB).default(256 * MiB),
    compileMemory: sizeField(16 * MiB, 64 * GiB).default(GiB),
    pids: z.number().int().min(8).max(100_000).default(128),
    /** Processes and threads for the compile step (go, javac and rustc start many threads). */
    compilePids: z.number().int().min(8).max(100_000).default(512),
    cpus: cpusField.default(1),
    output: sizeField(1, 256 * MiB).default(MiB),
    disk: sizeField(MiB, 64 * GiB).default(256 * MiB),
    network: z.enum(['none', 'all']).default('none'),
    /** wasm: the run's instruction budget (Wasmtime fuel); past it the verdict is `fuel-exhausted`. */
    fuel: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  })
  .strict()
  .refine((r) => r.code !== undefined || (r.files && r.files.length > 0), { message: 'give the program as `code` or as `files`' })
  .refine((r) => r.code === undefined || !r.files?.length, {
    message: 'give the program as `code` or as `files`, not both: put the code in the first file',
  });
export type RunInput = z.input<typeof runSchema>;
export type RunOptions = z.output<typeof runSchema>;

export type Verdict = 'ok' | 'runtime-error' | 'compile-error' | 'timeout' | 'oom' | 'output-limit' | 'fuel-exhausted';

export interface ExecResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: string | null;
  verdict: Verdict;
  wallMs: number;
  cpuMs: number;
  memoryBytes: number;
}

export interface RunResult extends ExecResult {
  language: string;
  /** Output of the compile step, for compiled languages. */
  compile?: ExecResult;
}
