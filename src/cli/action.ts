/** Wraps a command's action: errors print as `realm: message [CODE]` and exit non-zero. */
import { RealmError } from '@realm/sdk';
import { RealmError as DaemonError } from '../util/errors.js';

/** Usage errors exit 2, as a wrong flag does. */
const USAGE = new Set(['INVALID_REQUEST', 'LIMIT_INVALID', 'IMAGE_RECIPE_INVALID', 'JOB_SPEC_INVALID']);

/**
 * A realm error's code. realm's own modules reached by import() from the CLI's bundle carry a copy
 * of RealmError of their own (the bundle has another): theirs is known by its name and code.
 */
function codeOf(e: unknown): string | undefined {
  if (e instanceof RealmError || e instanceof DaemonError) return e.code;
  const code: unknown = e instanceof Error && e.name === 'RealmError' ? (e as Error & { code?: unknown }).code : undefined;
  return typeof code === 'string' ? code : undefined;
}

export function action<A extends unknown[]>(fn: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      // The SDK's errors (from the daemon's answers) and the daemon's own (`realm serve` runs it
      // in this process) print and exit alike.
      const code = codeOf(e);
      if (code) {
        process.stderr.write(`realm: ${(e as Error).message} [${code}]\n`);
        process.exit(USAGE.has(code) ? 2 : 1);
      }
      process.stderr.write(`realm: ${e instanceof Error ? e.message : String(e)}\n`);
      process.exit(1);
    }
  };
}

/** Collect repeated options (`--label a=b --label c=d`). */
export function collectList(value: string, prev: string[] = []): string[] {
  return [...prev, value];
}

/** `k=v` pairs to a record; a pair without `=` is a usage error. */
export function pairs(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list) {
    const i = item.indexOf('=');
    if (i <= 0) throw new RealmError('INVALID_REQUEST', `${what} "${item}" must look like KEY=VALUE`);
    out[item.slice(0, i)] = item.slice(i + 1);
  }
  return out;
}

/**
 * The program's stdin from `--stdin TEXT` or, with `-i`, all of this process's own stdin (as
 * `docker exec -i`): `realm run python main.py -i < input.txt`. Both at once is a usage error.
 */
export async function stdinOption(f: { stdin?: string; interactive?: boolean }): Promise<{ stdin?: string }> {
  if (f.interactive && f.stdin !== undefined)
    throw new RealmError('INVALID_REQUEST', 'give the input with --stdin TEXT or pass this stdin with -i, not both');
  if (!f.interactive) return f.stdin !== undefined ? { stdin: f.stdin } : {};
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return { stdin: Buffer.concat(chunks).toString('utf8') };
}

/** Exit code for a finished program: its own code, or 128+signal, or 124 for a timeout. */
export function exitCodeOf(r: { exitCode: number | null; signal: string | null; verdict: string }): number {
  if (r.exitCode !== null && r.verdict !== 'timeout') return r.exitCode;
  if (r.verdict === 'timeout') return 124;
  const signals: Record<string, number> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGSEGV: 11,
    SIGABRT: 6,
    SIGINT: 2,
    SIGHUP: 1,
    SIGFPE: 8,
    SIGBUS: 7,
    SIGXCPU: 24,
    SIGXFSZ: 25,
    SIGPIPE: 13,
  };
  return 128 + (signals[r.signal ?? ''] ?? 0);
}
