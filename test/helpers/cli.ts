/** bin/realm run as a user runs it: a child process, its exit code and what it printed. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { tokenFor } from './daemon.js';

/** The CLI as installed from the repository. */
export const REALM_BIN = join(PACKAGE_ROOT, 'bin', 'realm');

export interface CliResult {
  /** The exit code; null when it did not exit by itself (killed at the timeout). */
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** The daemon's URL (REALM_URL), with its admin token as REALM_TOKEN unless `token` says otherwise. */
  url?: string;
  token?: string;
  /** More environment, applied last; undefined removes a variable. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Written to its stdin, which is then closed. */
  input?: string;
  /** Killed after this long (default 60 s; 0: never). */
  timeoutMs?: number;
  /** Most bytes of stdout or stderr kept (default node's 1 MiB). */
  maxBuffer?: number;
}

export function realm(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (opts.url !== undefined) Object.assign(env, { REALM_URL: opts.url, REALM_TOKEN: opts.token ?? tokenFor(opts.url) });
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return new Promise((resolve) => {
    const child = execFile(
      REALM_BIN,
      args,
      {
        encoding: 'utf8',
        env,
        timeout: opts.timeoutMs ?? 60_000,
        ...(opts.cwd ? { cwd: opts.cwd } : {}),
        ...(opts.maxBuffer ? { maxBuffer: opts.maxBuffer } : {}),
      },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr }),
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}
