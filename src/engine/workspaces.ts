/**
 * Workspaces for coding agents: a private `git clone --local` of a repository, kept in a volume
 * and mounted at /workspace of a long-lived sandbox. The agent may commit, rewrite and delete
 * there; the user's own working tree is never touched. A workspace is a sandbox named `ws-NAME`
 * with the volume `ws-NAME`; its labels remember the project.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, lchownSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RealmError } from '../util/errors.js';
import type { DriverName, Mount } from '../drivers/driver.js';
import type { SandboxRecord } from '../store/store.js';
import { type CreateSandboxOptions, createSandboxSchema } from './schemas.js';
import { defaultAllow } from './workspace-net.js';
import { type GitCaller, gitAs } from './git-caller.js';
import { mayUse, ownerOf } from './owner.js';

const run = promisify(execFile);

export const WORKSPACE_LABEL = 'realm.workspace';
export const PROJECT_LABEL = 'realm.project';
export const WORKSPACE_MOUNT = '/workspace';
/**
 * Read-only inside the sandbox, written by the daemon: the user's git config and the socket of
 * a forwarded SSH agent.
 */
export const SHARE_MOUNT = '/.realm/share';
export const GITCONFIG_PATH = `${SHARE_MOUNT}/gitconfig`;
export const SSH_AGENT_PATH = `${SHARE_MOUNT}/ssh-agent.sock`;
/** Largest git config a client may hand over. */
export const MAX_GITCONFIG = 64 * 1024;
const RESERVED = new Set(['ls', 'list', 'help', 'new', 'rm', 'delete', 'path', 'logs']);
const NAME = /^[A-Za-z0-9_-]{1,48}$/;

export function checkWorkspaceName(name: string): void {
  if (!NAME.test(name)) throw new RealmError('INVALID_REQUEST', `workspace names are letters, digits, _ and - (at most 48): "${name}" is not one`);
  if (RESERVED.has(name.toLowerCase())) throw new RealmError('INVALID_REQUEST', `"${name}" is a reserved word; pick another workspace name`);
}

export const workspaceSandbox = (name: string): string => `ws-${name}`;

export function isWorkspace(rec: SandboxRecord): boolean {
  return WORKSPACE_LABEL in rec.labels;
}

/** git as the daemon (root), or as `as`: the local user the request acts for. */
async function git(args: string[], as?: GitCaller, stdout?: number): Promise<string> {
  try {
    if (as && as.uid !== 0) return await gitAs(as, args, stdout);
    return (await run('git', args, { maxBuffer: 1 << 20, env: { ...process.env, GIT_TERMINAL_PROMPT: '0' } })).stdout.trim();
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new RealmError('INVALID_REQUEST', `git ${args.join(' ')} failed: ${(err.stderr ?? err.message).trim()}`);
  }
}

/** The top of the repository holding `path` (on the daemon's host), as `as` sees it. */
export async function repositoryRoot(path: string, as?: GitCaller): Promise<string> {
  // Whether a path the caller cannot read exists is not the caller's to learn: only its git says.
  if (as && as.uid !== 0) {
    return git(['-C', path, 'rev-parse', '--show-toplevel'], as).catch(() => {
      throw new RealmError('INVALID_REQUEST', `${path} is not in a git repository you can read; run realm ws inside one`);
    });
  }
  if (!existsSync(path)) throw new RealmError('INVALID_REQUEST', `${path} does not exist; run realm ws inside a git repository`);
  return git(['-C', path, 'rev-parse', '--show-toplevel']).catch(() => {
    throw new RealmError('INVALID_REQUEST', `${path} is not in a git repository; run realm ws inside one`);
  });
}

/**
 * Clone `repo` into the empty directory `dest` as an independent copy (no shared objects, so
 * nothing done in the clone can reach the original), with `origin` pointing where the
 * original's origin points. For a caller who is not root, the repository is read only by git
 * running as that caller: it writes a bundle (refs and objects, data) to a file the daemon
 * opened, and the daemon clones that bundle; the caller's git never sees the daemon's dirs.
 */
export async function cloneInto(repo: string, dest: string, as?: GitCaller): Promise<void> {
  if (existsSync(dest) && readdirSync(dest).length) throw new RealmError('INVALID_REQUEST', `${dest} is not empty`);
  if (as && as.uid !== 0) await cloneAs(repo, dest, as);
  else await git(['clone', '--quiet', '--local', '--no-hardlinks', repo, dest]);
  const remote = await git(['-C', repo, 'config', '--get', 'remote.origin.url'], as).catch(() => '');
  if (remote) await git(['-C', dest, 'remote', 'set-url', 'origin', remote]);
  else await git(['-C', dest, 'remote', 'remove', 'origin']);
}

async function cloneAs(repo: string, dest: string, as: GitCaller): Promise<void> {
  // A repository without a single ref has nothing to bundle: its clone is an empty repository.
  if (!(await git(['-C', repo, 'for-each-ref', '--count=1'], as))) return void (await git(['init', '--quiet', dest]));
  const bundle = `${dest}.bundle`;
  rmSync(bundle, { force: true });
  const fd = openSync(bundle, 'wx', 0o600);
  try {
    await git(['-C', repo, 'bundle', 'create', '--quiet', '-', '--all'], as, fd);
    await git(['clone', '--quiet', bundle, dest]);
  } finally {
    closeSync(fd);
    rmSync(bundle, { force: true });
  }
}

export function volumePath(volumesDir: string, name: string): string {
  return join(volumesDir, workspaceSandbox(name));
}

/** Give the sandbox's host uid the whole tree (the clone was made as root); links are not followed. */
export function chownTree(dir: string, uid: number): void {
  lchownSync(dir, uid, uid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, uid);
    else lchownSync(p, uid, uid);
  }
}

export interface WorkspaceOptions {
  image?: string;
  driver?: DriverName;
  env?: Record<string, string>;
  network?: 'none' | 'all';
  /** Allow-list rules (HOST[:PORT]); used when `network` is not given. Default: DEFAULT_ALLOW plus the origin's host. */
  allow?: string[];
  /** The content of the user's ~/.gitconfig, shown read-only inside as the global git config. */
  gitconfig?: string;
}

export interface WorkspaceInfo {
  name: string;
  project: string;
  path: string;
  /** When it was last opened or attached (ms since epoch). */
  lastUsedAt: number;
  sandbox: SandboxRecord;
}

/** What Workspaces needs of the engine. */
export interface WorkspaceHost {
  volumesDir: string;
  sandboxUid: number;
  getSandbox(idOrName: string): Promise<SandboxRecord>;
  listSandboxes(filter: { labels?: Record<string, string> }): Promise<SandboxRecord[]>;
  sandboxesDir: string;
  createSandbox(opts: CreateSandboxOptions, owner?: string): Promise<SandboxRecord>;
  /** Record that the sandbox was used now. */
  touch(id: string): Promise<SandboxRecord>;
  startSandbox(idOrName: string): Promise<SandboxRecord>;
  destroySandbox(idOrName: string): Promise<void>;
  removeVolume(name: string): Promise<void>;
}

export class Workspaces {
  constructor(private readonly host: WorkspaceHost) {}

  private info(rec: SandboxRecord): WorkspaceInfo {
    const name = rec.labels[WORKSPACE_LABEL] ?? '';
    return { name, project: rec.labels[PROJECT_LABEL] ?? '', path: volumePath(this.host.volumesDir, name), lastUsedAt: rec.usedAt ?? rec.createdAt, sandbox: rec };
  }

  /** Host directory bound read-only at SHARE_MOUNT in a workspace's sandbox. */
  shareDir(id: string): string {
    return join(this.host.sandboxesDir, id, 'share');
  }

  /** What a workspace's sandbox gets besides its volumes (nothing for other sandboxes). */
  mounts(rec: SandboxRecord): Mount[] {
    if (!isWorkspace(rec)) return [];
    const dir = this.shareDir(rec.id);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    return [{ source: dir, target: SHARE_MOUNT, readOnly: true }];
  }

  /** Show `content` as the sandbox's global git config (replaced whole, never half-written). */
  private writeGitconfig(id: string, content: string | undefined): void {
    const dir = this.shareDir(id);
    if (!existsSync(dir)) return;
    const tmp = join(dir, '.gitconfig.tmp');
    writeFileSync(tmp, content ?? '', { mode: 0o644 });
    renameSync(tmp, join(dir, 'gitconfig'));
  }

  async list(): Promise<WorkspaceInfo[]> {
    return (await this.host.listSandboxes({})).filter(isWorkspace).map((r) => this.info(r));
  }

  async get(name: string): Promise<WorkspaceInfo> {
    checkWorkspaceName(name);
    const rec = await this.host.getSandbox(workspaceSandbox(name)).catch(() => {
      throw new RealmError('WORKSPACE_NOT_FOUND', `no workspace "${name}"; \`realm ws\` lists them, \`realm ws ${name}\` in a git repository makes it`);
    });
    return this.info(rec);
  }

  /**
   * Resume the workspace (starting it if stopped), or make it from the repository at `repo` for
   * `caller` (`owner` is its principal; git reads the repository as its uid/gid).
   */
  async open(name: string, repo: string, opts: WorkspaceOptions = {}, caller?: GitCaller & { owner: string }): Promise<WorkspaceInfo & { created: boolean }> {
    checkWorkspaceName(name);
    const existing = await this.get(name).catch(() => undefined);
    if (existing && caller && !mayUse(caller.owner, ownerOf(existing.sandbox))) {
      throw new RealmError('SANDBOX_NAME_TAKEN', `the workspace name "${name}" is taken by another user; pick another name`);
    }
    if (existing) {
      if (existing.sandbox.status !== 'running') await this.host.startSandbox(existing.sandbox.id);
      if (opts.gitconfig !== undefined) this.writeGitconfig(existing.sandbox.id, opts.gitconfig);
      return { ...this.info(await this.host.touch(existing.sandbox.id)), created: false };
    }
    const root = await repositoryRoot(repo, caller);
    const dest = volumePath(this.host.volumesDir, name);
    try {
      await cloneInto(root, dest, caller);
      chownTree(dest, this.host.sandboxUid);
      const network = opts.network ? { network: opts.network } : { allow: opts.allow ?? (await defaultAllow(root)) };
      const rec = await this.host.createSandbox(createSandboxSchema.parse({
        name: workspaceSandbox(name),
        image: opts.image ?? 'host',
        ...(opts.driver ? { driver: opts.driver } : {}),
        ...network,
        env: { GIT_CONFIG_GLOBAL: GITCONFIG_PATH, ...(opts.env ?? {}) },
        ttl: 0,
        labels: { [WORKSPACE_LABEL]: name, [PROJECT_LABEL]: root.slice(0, 256) },
        volumes: [{ volume: workspaceSandbox(name), path: WORKSPACE_MOUNT }],
      }), caller?.owner);
      this.writeGitconfig(rec.id, opts.gitconfig);
      return { ...this.info(rec), created: true };
    } catch (e) {
      await this.host.removeVolume(workspaceSandbox(name)).catch(() => undefined);
      rmSync(dest, { recursive: true, force: true });
      throw e;
    }
  }

  /** Remove the sandbox, the clone and the record; nothing of the user's repository. */
  async delete(name: string): Promise<void> {
    const ws = await this.get(name);
    await this.host.destroySandbox(ws.sandbox.id);
    await this.host.removeVolume(workspaceSandbox(name));
  }
}
