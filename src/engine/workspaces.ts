/**
 * Workspaces for coding agents: a private `git clone --local` of a repository, kept in a volume
 * and mounted at /workspace of a long-lived sandbox. The agent may commit, rewrite and delete
 * there; the user's own working tree is never touched. A workspace is a sandbox whose record says
 * so (its `workspace` field, set here only; never a label or a name), named `ws-NAME`, with the
 * volume `ws-NAME`, whose record says whose clone it is. The generic routes refuse those names,
 * so no tenant can hold them first, and no other sandbox mounts the clone.
 */
import { execFile } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RealmError } from '../util/errors.js';
import { chownTree } from '../util/safe-tree.js';
import type { DriverName, Mount } from '../drivers/driver.js';
import type { SandboxRecord, WorkspaceOf } from '../store/store.js';
import type { SandboxLifecycle } from './sandboxes.js';
import type { Volumes } from './volumes.js';
import { createSandboxSchema } from './schemas.js';
import { defaultAllow } from './workspace-net.js';
import { type GitCaller, gitAs } from './git-caller.js';
import { mayUse } from './owner.js';

const run = promisify(execFile);

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
  if (!NAME.test(name))
    throw new RealmError('INVALID_REQUEST', `workspace names are letters, digits, _ and - (at most 48): "${name}" is not one`);
  if (RESERVED.has(name.toLowerCase()))
    throw new RealmError('INVALID_REQUEST', `"${name}" is a reserved word; pick another workspace name`);
}

/** The name of workspace NAME's sandbox and of its volume. */
export const workspaceSandbox = (name: string): string => `ws-${name}`;

/** Whether the sandbox is a workspace's: by its record's kind, which only Workspaces sets. */
export function isWorkspace(rec: SandboxRecord): boolean {
  return rec.workspace !== undefined;
}

const notFound = (name: string): RealmError =>
  new RealmError(
    'WORKSPACE_NOT_FOUND',
    `no workspace "${name}"; \`realm ws\` lists them, \`realm ws ${name}\` in a git repository makes it`,
  );

/** Whether `caller` (when known) may use what `of` names: the same owner, or no caller given. */
/** Whether `caller` may use the workspace (root may use all; no caller: the engine itself). */
function ownedBy(of: WorkspaceOf, caller: string | undefined): boolean {
  return caller === undefined || mayUse(caller, of.owner);
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

export interface WorkspaceOptions {
  image?: string;
  driver?: DriverName;
  env?: Record<string, string>;
  network?: 'none' | 'all';
  /** Allow-list rules (HOST[:PORT]); used when `network` is not given. Default: DEFAULT_ALLOW plus the origin's host. */
  allow?: string[];
  /** The content of the user's ~/.gitconfig, shown read-only inside as the global git config. */
  gitconfig?: string;
  /** Who opens it, where the caller is known: recorded on a new workspace, and required to match on an existing one. */
  owner?: string;
}

export interface WorkspaceInfo {
  name: string;
  project: string;
  path: string;
  /** When it was last opened or attached (ms since epoch). */
  lastUsedAt: number;
  sandbox: SandboxRecord;
}

/** Host directory bound read-only at SHARE_MOUNT in workspace sandbox `id`. */
function shareDirOf(sandboxesDir: string, id: string): string {
  return join(sandboxesDir, id, 'share');
}

/** What a workspace's sandbox gets besides its volumes (nothing for other sandboxes). */
export function workspaceMounts(sandboxesDir: string, rec: SandboxRecord): Mount[] {
  if (!isWorkspace(rec)) return [];
  const dir = shareDirOf(sandboxesDir, rec.id);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  return [{ source: dir, target: SHARE_MOUNT, readOnly: true }];
}

export class Workspaces {
  /** Opens under way, by name: a second open of a name waits for the first. */
  private readonly opening = new Map<string, Promise<unknown>>();

  constructor(
    private readonly volumes: Volumes,
    private readonly sandboxes: SandboxLifecycle,
    /** Owner of volumes at rest, the clone included (each sandbox sees it as its own uid's). */
    private readonly storageUid: number,
  ) {}

  private info(rec: SandboxRecord): WorkspaceInfo {
    const name = rec.workspace?.name ?? '';
    return {
      name,
      project: rec.workspace?.project ?? '',
      path: volumePath(this.volumes.dir, name),
      lastUsedAt: rec.usedAt ?? rec.createdAt,
      sandbox: rec,
    };
  }

  /** Host directory bound read-only at SHARE_MOUNT in a workspace's sandbox. */
  shareDir(id: string): string {
    return shareDirOf(this.sandboxes.dir, id);
  }

  /** Show `content` as the sandbox's global git config (replaced whole, never half-written). */
  private writeGitconfig(id: string, content: string | undefined): void {
    const dir = this.shareDir(id);
    if (!existsSync(dir)) return;
    const tmp = join(dir, '.gitconfig.tmp');
    writeFileSync(tmp, content ?? '', { mode: 0o644 });
    renameSync(tmp, join(dir, 'gitconfig'));
  }

  /** The workspace sandbox of this name (by kind), whoever owns it. */
  private async find(name: string): Promise<SandboxRecord | undefined> {
    return (await this.sandboxes.list()).find((r) => r.workspace?.name === name);
  }

  /** Whether this node holds workspace `name`, whoever owns it: its sandbox, or its clone alone. */
  async has(name: string): Promise<boolean> {
    checkWorkspaceName(name);
    return (await this.find(name)) !== undefined || (await this.volumes.record(workspaceSandbox(name)))?.workspace?.name === name;
  }

  /** Workspaces `owner` may use (all when no owner is given). */
  async list(owner?: string): Promise<WorkspaceInfo[]> {
    return (await this.sandboxes.list()).filter((r) => r.workspace && ownedBy(r.workspace, owner)).map((r) => this.info(r));
  }

  async get(name: string, owner?: string): Promise<WorkspaceInfo> {
    checkWorkspaceName(name);
    const rec = await this.find(name);
    if (!rec?.workspace || !ownedBy(rec.workspace, owner)) throw notFound(name);
    return this.info(rec);
  }

  /**
   * Resume the workspace (starting it if stopped), or make it from the repository at `repo` for
   * `caller` (`owner` is its principal; git reads the repository as its uid/gid).
   */
  async open(
    name: string,
    repo: string,
    opts: WorkspaceOptions = {},
    caller?: GitCaller & { owner: string },
  ): Promise<WorkspaceInfo & { created: boolean }> {
    checkWorkspaceName(name);
    const before = this.opening.get(name);
    const o = caller ? { ...opts, owner: caller.owner } : opts;
    const p = (before ?? Promise.resolve()).catch(() => undefined).then(() => this.openNow(name, repo, o, caller));
    this.opening.set(name, p);
    try {
      return await p;
    } finally {
      if (this.opening.get(name) === p) this.opening.delete(name);
    }
  }

  private async openNow(
    name: string,
    repo: string,
    opts: WorkspaceOptions,
    caller?: GitCaller,
  ): Promise<WorkspaceInfo & { created: boolean }> {
    const existing = await this.find(name);
    if (existing?.workspace) {
      if (!ownedBy(existing.workspace, opts.owner))
        throw new RealmError('SANDBOX_NAME_TAKEN', `workspace "${name}" belongs to another user; pick another workspace name`);
      if (existing.status !== 'running') await this.sandboxes.start(existing.id);
      if (opts.gitconfig !== undefined) this.writeGitconfig(existing.id, opts.gitconfig);
      return { ...this.info(await this.sandboxes.touch(existing.id)), created: false };
    }
    const reserved = workspaceSandbox(name);
    // Held by something that is not this workspace (left by an older realm): never taken over.
    if (await this.sandboxes.named(reserved)) {
      throw new RealmError(
        'SANDBOX_NAME_TAKEN',
        `a sandbox named ${reserved} exists and is not workspace ${name}; remove it (\`realm sandbox rm ${reserved}\`) or pick another workspace name`,
      );
    }
    const vol = await this.volumes.record(reserved);
    if (vol && !(vol.workspace?.name === name && ownedBy(vol.workspace, opts.owner))) {
      throw new RealmError(
        'SANDBOX_NAME_TAKEN',
        `a volume named ${reserved} exists and is not workspace ${name}'s clone; remove it (\`realm volume rm ${reserved}\`) or pick another workspace name`,
      );
    }
    const root = await repositoryRoot(repo, caller);
    const of: WorkspaceOf = { name, ...(opts.owner !== undefined ? { owner: opts.owner } : {}) };
    // A clone whose sandbox was removed is resumed as it is; otherwise a fresh one.
    let made = false;
    try {
      if (!vol) {
        const dest = await this.volumes.createForWorkspace(reserved, of);
        made = true;
        await cloneInto(root, dest, caller);
        await chownTree(dest, this.storageUid, this.storageUid);
      }
      const network = opts.network ? { network: opts.network } : { allow: opts.allow ?? (await defaultAllow(root)) };
      const base = createSandboxSchema.parse({
        image: opts.image ?? 'host',
        ...(opts.driver ? { driver: opts.driver } : {}),
        ...network,
        env: { GIT_CONFIG_GLOBAL: GITCONFIG_PATH, ...(opts.env ?? {}) },
        ttl: 0,
      });
      // The reserved name and the clone's volume are set here, past the schema that refuses them to everyone else.
      const rec = await this.sandboxes.create(
        { ...base, name: reserved, volumes: [{ volume: reserved, path: WORKSPACE_MOUNT, readOnly: false }] },
        false,
        of.owner,
        { ...of, project: root.slice(0, 256) },
      );
      this.writeGitconfig(rec.id, opts.gitconfig);
      return { ...this.info(rec), created: true };
    } catch (e) {
      if (made) await this.volumes.remove(reserved, name).catch(() => undefined);
      throw e;
    }
  }

  /** Remove the sandbox, the clone and the record; nothing of the user's repository. */
  async delete(name: string, owner?: string): Promise<void> {
    checkWorkspaceName(name);
    const rec = await this.find(name);
    const vol = await this.volumes.record(workspaceSandbox(name));
    const mine = (of: WorkspaceOf | undefined): of is WorkspaceOf => of?.name === name && ownedBy(of, owner);
    if (!mine(rec?.workspace) && !mine(vol?.workspace)) throw notFound(name);
    if (rec && mine(rec.workspace)) await this.sandboxes.destroy(rec.id);
    if (vol && mine(vol.workspace)) await this.volumes.remove(vol.name, name);
  }
}
