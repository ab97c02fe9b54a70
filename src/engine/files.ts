/**
 * The files API: read, write, list, stat, mkdir, remove, move, and tar in and out — each done by
 * realm-fs inside the sandbox, as its user, so paths and links resolve in the sandbox's root
 * and nothing outside it can be reached.
 */
import { once } from 'node:events';
import { posix } from 'node:path';
import type { DriverProcess } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';
import { type EntryType, encodeRecords, parseRecords } from './records.js';
import { recordsToTar, tarToRecords } from './tar.js';

export interface ToolResult {
  code: number | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs realm-fs with these arguments in the sandbox (stdin optional). */
export type ToolRunner = (sandbox: string, args: string[], stdin?: Buffer) => Promise<ToolResult>;

export interface FileInfo {
  name: string;
  path: string;
  type: EntryType;
  size: number;
  mode: string;
  mtime: string;
  target?: string;
}

const HOME = '/home/user';

/** An absolute path inside the sandbox (relative ones are under the home directory). */
export function sandboxPath(p: string | undefined): string {
  if (p === undefined || p === '') throw new RealmError('INVALID_REQUEST', 'give a path, e.g. path=/home/user/main.py');
  if (p.includes('\0') || p.length > 4096)
    throw new RealmError('INVALID_REQUEST', 'a path cannot contain NUL or be longer than 4096 bytes');
  return posix.normalize(p.startsWith('/') ? p : posix.join(HOME, p));
}

function fail(r: ToolResult, what: string): never {
  const msg = r.stderr.replace(/^realm-fs: /, '').trim() || what;
  switch (r.code) {
    case 2:
      throw new RealmError('FILE_NOT_FOUND', `${msg}; list the directory to see what is there`);
    case 3:
      throw new RealmError('FILE_INVALID', msg);
    case 4:
      throw new RealmError('FILE_FORBIDDEN', `${msg}; the sandbox user can write under /home/user, /tmp and volumes`);
    case 5:
      throw new RealmError('FILE_NO_SPACE', `${msg}; free space or create the sandbox with a larger --disk`);
    case 6:
      throw new RealmError('FILE_EXISTS', msg);
    case 127:
      throw new RealmError(
        'SANDBOX_NOT_RUNNING',
        'this sandbox has no file tool (it was created by an older realm); recreate it',
      );
    case null:
    default:
      throw new RealmError('INTERNAL', `${what} failed: ${msg}`);
  }
}

function info(dir: string, r: ReturnType<typeof parseRecords>[number], absolute = false): FileInfo {
  return {
    name: absolute ? posix.basename(r.name) : r.name,
    path: absolute ? r.name : posix.join(dir, r.name),
    type: r.type,
    size: r.size,
    mode: (r.mode & 0o7777).toString(8).padStart(4, '0'),
    mtime: new Date(r.mtime * 1000).toISOString(),
    ...(r.type === 'link' && r.content ? { target: r.content.toString('utf8') } : {}),
  };
}

/** Drive one run of realm-fs: stdin in, stdout as bytes (at most `maxOut`), stderr as text. */
export async function runTool(
  proc: DriverProcess,
  stdin?: Buffer,
  maxOut = 256 * 1024 ** 2,
  timeoutMs = 300_000,
): Promise<ToolResult> {
  const out: Buffer[] = [];
  let size = 0;
  let tooBig = false;
  let stderr = '';
  proc.stdout.on('data', (c: Buffer) => {
    size += c.length;
    if (size > maxOut) {
      tooBig = true;
      void proc.kill();
    } else out.push(c);
  });
  proc.stderr.on('data', (c: Buffer) => {
    if (stderr.length < 4096) stderr += c.toString();
  });
  const ended = Promise.all([once(proc.stdout, 'close'), once(proc.stderr, 'close')]);
  if (proc.stdin) {
    proc.stdin.on('error', () => undefined);
    proc.stdin.end(stdin);
  }
  const timer = setTimeout(() => void proc.kill(), timeoutMs);
  try {
    const exit = await proc.wait();
    await ended;
    if (tooBig) throw new RealmError('FILE_TOO_LARGE', `more than ${maxOut} bytes; fetch a smaller file or directory`);
    return { code: exit.exitCode, stdout: Buffer.concat(out), stderr };
  } finally {
    clearTimeout(timer);
  }
}

export class SandboxFiles {
  constructor(private readonly tool: ToolRunner) {}

  private async ok(sandbox: string, args: string[], what: string, stdin?: Buffer): Promise<Buffer> {
    const r = await this.tool(sandbox, args, stdin);
    if (r.code !== 0) fail(r, what);
    return r.stdout;
  }

  read(sandbox: string, path: string): Promise<Buffer> {
    return this.ok(sandbox, ['cat', sandboxPath(path)], 'read');
  }

  async write(sandbox: string, path: string, data: Buffer, opts: { mode?: number; parents?: boolean } = {}): Promise<void> {
    const mode = opts.mode ?? 0o644;
    if (!Number.isInteger(mode) || mode < 0 || mode > 0o777)
      throw new RealmError('INVALID_REQUEST', 'mode must be octal permissions like 644 or 755');
    await this.ok(sandbox, ['write', sandboxPath(path), mode.toString(8), opts.parents ? '1' : '0'], 'write', data);
  }

  async list(sandbox: string, path: string): Promise<FileInfo[]> {
    const dir = sandboxPath(path);
    const recs = parseRecords(await this.ok(sandbox, ['ls', dir], 'list'), false);
    return recs.map((r) => info(dir, r)).sort((a, b) => a.name.localeCompare(b.name));
  }

  async stat(sandbox: string, path: string): Promise<FileInfo> {
    const p = sandboxPath(path);
    const [rec] = parseRecords(await this.ok(sandbox, ['stat', p], 'stat'), false);
    if (!rec) throw new RealmError('INTERNAL', 'stat returned nothing');
    return info(p, rec, true);
  }

  async mkdir(sandbox: string, path: string, parents = false): Promise<void> {
    await this.ok(sandbox, ['mkdir', sandboxPath(path), parents ? '1' : '0'], 'mkdir');
  }

  async remove(sandbox: string, path: string, recursive = false): Promise<void> {
    const p = sandboxPath(path);
    if (p === '/') throw new RealmError('FILE_INVALID', 'refusing to remove /');
    await this.ok(sandbox, ['rm', p, recursive ? '1' : '0'], 'remove');
  }

  async move(sandbox: string, from: string, to: string): Promise<void> {
    await this.ok(sandbox, ['mv', sandboxPath(from), sandboxPath(to)], 'move');
  }

  /** A tar of `path` (a file or a whole directory, under its own name). */
  async download(sandbox: string, path: string): Promise<Buffer> {
    return recordsToTar(parseRecords(await this.ok(sandbox, ['pack', sandboxPath(path)], 'download'), true));
  }

  /** Unpack a tar into the directory `dest` (made if missing); a bad tar changes nothing. */
  async upload(sandbox: string, dest: string, tar: Buffer): Promise<void> {
    const recs = await tarToRecords(tar);
    await this.ok(sandbox, ['unpack', sandboxPath(dest)], 'upload', encodeRecords(recs));
  }
}
