/**
 * Piston v2 compatibility: `GET /api/v2/runtimes`, `POST /api/v2/execute`, with Piston's request
 * and response shapes and its `{ message }` error body, for clients written against Piston.
 */
import type { Context, Hono } from 'hono';
import semver from 'semver';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import { type ExecResult, type RunResult, runSchema } from '../../engine/schemas.js';
import { RealmError } from '../../util/errors.js';
import { jsonBody, requestSignal } from '../body.js';
import { zodMessage } from '../errors.js';
import { ByteLog } from '../../engine/output.js';

const MiB = 1024 ** 2;

export const executeSchema = z.object({
  language: z.string().min(1).max(64),
  version: z.string().max(64).default('*'),
  files: z
    .array(
      z.object({
        name: z.string().max(255).optional(),
        content: z.string().max(16 * MiB),
        encoding: z.enum(['utf8', 'base64', 'hex']).default('utf8'),
      }),
    )
    .min(1, 'files must hold at least one file')
    .max(64),
  // Piston takes null as absent (`args ?? []`, `stdin ?? ''`, `run_timeout ?? default`).
  stdin: z
    .string()
    .max(64 * MiB)
    .nullish()
    .transform((v) => v ?? ''),
  args: z
    .array(z.string().max(64 * 1024))
    .max(1024)
    .nullish()
    .transform((v) => v ?? []),
  compile_timeout: z.number().int().nullish(),
  run_timeout: z.number().int().nullish(),
  compile_memory_limit: z.number().int().nullish(),
  run_memory_limit: z.number().int().nullish(),
}); // unknown fields are ignored, as Piston does

/**
 * Piston matches versions as semver ranges (`3.11`, `^3.11.0`, `>=3.9`, `*`), never as string
 * prefixes; toolchains that print a looser version (`5.2.15(1)-release`) are coerced first.
 */
export function versionMatches(version: string, range: string): boolean {
  const v = semver.valid(version) ?? semver.coerce(version)?.version;
  return v !== undefined && semver.validRange(range) !== null && semver.satisfies(v, range);
}

/** A limit Piston leaves out, sends as null or as 0 (no limit of that kind there) takes the default. */
const limit = (v: number | null | undefined, dflt: number): number => (v === undefined || v === null || v <= 0 ? dflt : v);

/** Piston's stage status codes. */
function status(r: ExecResult): string | null {
  switch (r.verdict) {
    case 'ok':
      return null;
    case 'timeout':
    case 'fuel-exhausted': // wasm's instruction budget: Piston's nearest is its time limit
      return 'TO';
    case 'output-limit':
      return 'OL';
    case 'oom':
      // The kernel's OOM kill (or realm's, of a program thrashing at its limit) is a SIGKILL, even
      // when it fell on a child (gcc's cc1) and the main process exited with a code of its own.
      return 'SG';
    case 'runtime-error':
    case 'compile-error':
      return r.signal ? 'SG' : 'RE';
  }
}

function stage(r: ExecResult, output: string) {
  return {
    stdout: r.stdout,
    stderr: r.stderr,
    output,
    code: r.exitCode,
    signal: r.signal,
    message:
      r.verdict === 'oom'
        ? 'Out of memory'
        : r.verdict === 'timeout'
          ? 'Timed out'
          : r.verdict === 'output-limit'
            ? 'Output limit exceeded'
            : null,
    status: status(r),
    cpu_time: r.cpuMs,
    wall_time: r.wallMs,
    memory: r.memoryBytes,
  };
}

function pistonError(c: Context, message: string, code = 400): Response {
  return c.json({ message }, code as 400);
}

export function pistonRoutes(app: Hono, engine: Engine): void {
  app.get('/api/v2/runtimes', async (c) =>
    c.json(
      (await engine.languages.list())
        .filter((l) => l.ready)
        .map((l) => ({ language: l.name, version: l.version, aliases: l.aliases })),
    ),
  );

  app.post('/api/v2/execute', async (c) => {
    let body: unknown;
    try {
      body = await jsonBody(c);
    } catch {
      return pistonError(c, 'Request body is not valid JSON');
    }
    const parsed = executeSchema.safeParse(body);
    if (!parsed.success) return pistonError(c, zodMessage(parsed.error));
    const req = parsed.data;
    const lang = engine.languages.get(req.language);
    const info = lang ? (await engine.languages.list()).find((l) => l.name === lang.name) : undefined;
    if (!lang || !info || !versionMatches(info.version, req.version)) {
      return pistonError(c, `${req.language}-${req.version} runtime is unknown`);
    }
    // Binary files travel encoded to the sandbox and are written byte for byte.
    const files = req.files.map((f) => ({ ...(f.name ? { name: f.name } : {}), content: f.content, encoding: f.encoding }));
    const opts = runSchema.safeParse({
      language: lang.name,
      files,
      stdin: req.stdin,
      args: req.args,
      timeout: limit(req.run_timeout, 3_000),
      compileTimeout: limit(req.compile_timeout, 10_000),
      memory: limit(req.run_memory_limit, 256 * MiB),
      compileMemory: limit(req.compile_memory_limit, 1024 * MiB),
    });
    if (!opts.success) return pistonError(c, zodMessage(opts.error));
    // Both streams in arrival order, in few large pieces (a string per chunk costs far more than its bytes).
    const all = new ByteLog();
    let result: RunResult;
    try {
      result = await engine.run(opts.data, (_s, chunk) => void all.append(chunk), requestSignal(c));
    } catch (e) {
      if (e instanceof RealmError && e.status < 500) return pistonError(c, e.message, e.status);
      throw e;
    }
    const output = all.bytes().toString('utf8');
    all.release();
    const compiled = result.compile ? stage(result.compile, result.compile.stdout + result.compile.stderr) : undefined;
    // When compiling failed (an error, a timeout, memory) the program never ran: Piston answers
    // with `run` set to the compile stage, for clients that only read `run`.
    const failed = result.compile && result.compile.verdict !== 'ok';
    const run = failed ? compiled : stage(result, output);
    return c.json({ language: lang.name, version: info.version, run, ...(compiled ? { compile: compiled } : {}) });
  });
}
