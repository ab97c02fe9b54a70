import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  type Client,
  RealmError,
  SSH_AGENT_PATH,
  Sandbox,
  type WorkspaceInfo,
  type WorkspaceOpenOptions,
  workspaces,
} from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList, pairs } from '../action.js';
import { DEFAULT_SHELL, attachTerminal } from '../terminal.js';
import { ago, printJson, printTable } from '../output.js';
import { pick } from '../picker.js';
import { placementOf } from '../placement.js';

interface WsFlags {
  image?: string;
  driver?: string;
  network?: string;
  allow: string[];
  env: string[];
  ssh: boolean;
  detach?: boolean;
  logs?: boolean;
  path?: boolean;
  delete?: boolean;
  fetch?: boolean;
  json?: boolean;
  node?: string;
  tag: string[];
  platform?: string;
}

const HEAD = ['NAME', 'PROJECT', 'IMAGE', 'STATUS', 'CREATED', 'LAST USED'];
const row = (w: WorkspaceInfo): string[] => [
  w.name,
  w.project,
  w.sandbox.image,
  w.sandbox.status,
  ago(w.sandbox.createdAt),
  ago(w.lastUsedAt),
];

/** The list's head and rows; in a cluster with the node each lives on. */
function table(list: WorkspaceInfo[]): [string[], string[][]] {
  if (!list.some((w) => w.node !== undefined)) return [HEAD, list.map(row)];
  return [
    ['NAME', 'NODE', ...HEAD.slice(1)],
    list.map((w) => {
      const r = row(w);
      r.splice(1, 0, w.node ?? '-');
      return r;
    }),
  ];
}

/** The user's global git config, shown read-only inside the workspace. */
function gitconfig(): string | undefined {
  const xdg = process.env.XDG_CONFIG_HOME ?? join(homedir(), '.config');
  for (const p of [join(homedir(), '.gitconfig'), join(xdg, 'git', 'config')]) {
    if (existsSync(p)) return readFileSync(p, 'utf8').slice(0, 64 * 1024);
  }
  return undefined;
}

function createOptions(f: WsFlags): WorkspaceOpenOptions {
  const image = f.image ?? process.env.REALM_DEFAULT_IMAGE;
  const driver = f.driver ?? process.env.REALM_DEFAULT_DRIVER;
  const network = f.network ?? process.env.REALM_DEFAULT_NETWORK;
  const config = gitconfig();
  return {
    ...(image ? { image } : {}),
    ...(driver ? { driver: driver as WorkspaceOpenOptions['driver'] } : {}),
    ...(network ? { network: network as 'none' | 'all' } : {}),
    ...(f.allow.length ? { allow: f.allow } : {}),
    ...(config !== undefined ? { gitconfig: config } : {}),
    env: pairs(f.env, '--env'),
    ...placementOf(f),
  };
}

/** Resume or create the workspace, then attach to (or start) its terminal session. */
async function openWorkspace(c: Client, name: string, repo: string, command: string[], f: WsFlags): Promise<void> {
  const ws = await workspaces.open(name, repo, createOptions(f), c);
  const on = ws.node !== undefined ? ` on node ${ws.node}` : '';
  process.stderr.write(
    ws.created ? `realm: created workspace ${name}${on} (a clone of ${ws.project})\n` : `realm: resumed workspace ${name}${on}\n`,
  );
  if (f.json) return printJson(ws);
  const sb = await Sandbox.get(ws.sandbox.id, c);
  // One terminal session per workspace: a background process on a pseudo-terminal, so that
  // leaving (Ctrl-P Ctrl-Q) does not end it and a later `realm ws NAME` finds it again.
  const sessions = (await sb.processes.list()).filter((p) => p.info.tty);
  let session = sessions.find((p) => p.info.status === 'running');
  if (f.logs) {
    const last = session ?? sessions.at(-1);
    if (!last) throw new RealmError('PROCESS_NOT_FOUND', `workspace ${name} has no session yet; open one with realm ws ${name}`);
    for await (const ev of last.output(undefined, { follow: false })) if (ev.type !== 'exit') process.stdout.write(ev.data);
    return;
  }
  if (session && command.length) {
    throw new RealmError(
      'WORKSPACE_BUSY',
      `workspace ${name} already runs ${session.info.command.join(' ')}; attach with \`realm ws ${name}\`, or end that first`,
    );
  }
  const agent = f.ssh && !f.detach ? process.env.SSH_AUTH_SOCK : undefined;
  session ??= await sb.processes.start(command.length ? command : DEFAULT_SHELL, {
    cwd: '/workspace',
    tty: true,
    rows: process.stdout.rows || 24,
    cols: process.stdout.columns || 80,
    ...(agent ? { env: { SSH_AUTH_SOCK: SSH_AGENT_PATH } } : {}),
  });
  if (f.detach) {
    process.stdout.write(`${session.id}\n`);
    return;
  }
  // The agent is reachable inside while this terminal is attached, as with `ssh -A`.
  const fwd = agent ? await workspaces.forwardSshAgent(name, agent, c) : undefined;
  try {
    const s = session;
    const detached = await attachTerminal(async (size) => {
      const term = await s.attach();
      term.resize(size.rows, size.cols);
      return term;
    }, true);
    if (detached) process.stderr.write(`\r\nrealm: detached from workspace ${name}; \`realm ws ${name}\` attaches again\n`);
  } finally {
    fwd?.close();
  }
}

/**
 * Bring the agent's branches home: `git bundle` runs inside the workspace (as its user, so
 * nothing of the clone's own git config runs on this host), the bundle comes back over the API,
 * and this repository fetches its branches as refs/remotes/realm-NAME/*.
 */
async function fetchWorkspace(c: Client, name: string): Promise<void> {
  const ws = await workspaces.get(name, c);
  const sb = await Sandbox.get(ws.sandbox.id, c);
  if (ws.sandbox.status !== 'running') await sb.start();
  const inside = `/tmp/.realm-fetch-${randomBytes(6).toString('hex')}.bundle`;
  const dir = mkdtempSync(join(tmpdir(), 'realm-fetch-'));
  try {
    const made = await sb.exec(['git', '-C', '/workspace', 'bundle', 'create', '--quiet', inside, '--branches'], {
      timeout: '10m',
    });
    if (made.exitCode !== 0)
      throw new RealmError(
        'INVALID_REQUEST',
        `git bundle in workspace ${name} failed: ${made.stderr.trim() || made.stdout.trim()}; does the clone have a commit on a branch?`,
      );
    const bundle = join(dir, 'ws.bundle');
    writeFileSync(bundle, await sb.files.read(inside));
    const remote = `refs/remotes/realm-${name}`;
    try {
      execFileSync('git', ['fetch', '--quiet', '--no-write-fetch-head', bundle, `+refs/heads/*:${remote}/*`], {
        stdio: ['ignore', 'inherit', 'pipe'],
      });
    } catch (e) {
      const err = e as { stderr?: Buffer; message: string };
      throw new RealmError(
        'INVALID_REQUEST',
        `git fetch failed (run realm ws ${name} --fetch inside the repository to fetch into): ${(err.stderr?.toString() ?? err.message).trim()}`,
      );
    }
    process.stdout.write(
      execFileSync('git', ['for-each-ref', '--format=%(refname:short) %(objectname:short) %(subject)', remote]),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await sb.exec(['rm', '-f', inside]).catch(() => undefined);
  }
}

/** `realm ws` alone: a picker in a terminal, a table otherwise. */
async function listWorkspaces(c: Client, f: WsFlags): Promise<void> {
  let list = await workspaces.list(c);
  if (f.json) return printJson(list);
  if (!process.stdin.isTTY || !process.stdout.isTTY || list.length === 0) return printTable(...table(list));
  for (;;) {
    const rows = list;
    const [head, cells] = table(rows);
    const choice = await pick({ title: 'realm workspaces', head, rows: cells, label: (i) => rows[i]?.name ?? '' });
    const w = choice ? rows[choice.index] : undefined;
    if (!choice || !w) return;
    if (choice.action === 'open') return openWorkspace(c, w.name, w.project, [], f);
    await workspaces.delete(w.name, c);
    process.stderr.write(`realm: deleted workspace ${w.name}\n`);
    list = await workspaces.list(c);
    if (list.length === 0) return;
  }
}

export function register(program: Command): void {
  program
    .command('ws')
    .description(
      'workspaces: a private clone of the current git repository in a sandbox, for coding agents (Ctrl-P Ctrl-Q detaches)',
    )
    .argument('[name]', 'workspace name (none: list workspaces, or pick one in a terminal)')
    .argument('[command...]', 'what the session runs (default: a shell in /workspace)')
    .option('--image <image>', 'image when creating (default REALM_DEFAULT_IMAGE or host)')
    .option('--driver <driver>', 'isolation driver when creating (default REALM_DEFAULT_DRIVER or namespace)')
    .option(
      '--network <mode>',
      'network when creating: all or none (default: an allow-list of the origin, package indexes and model APIs)',
    )
    .option(
      '--allow <host[:port]>',
      'when creating, reach only these (repeatable; replaces the default allow-list)',
      collectList,
      [],
    )
    .option('--env <K=V>', 'environment variable when creating (repeatable)', collectList, [])
    .option('--node <id>', 'in a cluster: create it on this node (`realm node ls`); one that exists opens where it lives')
    .option('--tag <tag>', 'in a cluster: create it only on a node with this tag (repeatable)', collectList, [])
    .option('--platform <os/arch>', 'in a cluster: only on a node of this platform, e.g. linux/amd64 (`realm node ls`)')
    .option('--no-ssh', 'do not forward the SSH agent ($SSH_AUTH_SOCK) into the session')
    .option('-d, --detach', 'start the session in the background and return')
    .option('--logs', "print what the workspace's session printed (the last 1 MiB)")
    .option('--path', "print the clone's path on this host (git fetch from it)")
    .option('--delete', 'remove the workspace: its sandbox and its clone, never your repository')
    .option('--fetch', "fetch the workspace's branches into this repository as refs/remotes/realm-NAME/*")
    .option('--json', 'print JSON')
    .action(
      action(async (name: string | undefined, command: string[], f: WsFlags) => {
        const c = await client();
        if (!name) return listWorkspaces(c, f);
        if (f.delete) {
          await workspaces.delete(name, c);
          process.stdout.write(`${name} deleted\n`);
          return;
        }
        if (f.fetch) return fetchWorkspace(c, name);
        if (f.path) {
          const ws = await workspaces.get(name, c);
          process.stdout.write(`${ws.path}\n`);
          if (ws.node !== undefined)
            process.stderr.write(`realm: on the host of node ${ws.node} (realm node inspect ${ws.node})\n`);
          // The clone belongs to the sandbox's uid, so git asks for it to be trusted explicitly.
          if (process.stderr.isTTY) process.stderr.write(`realm: fetch the agent's commits with: realm ws ${name} --fetch\n`);
          return;
        }
        return openWorkspace(c, name, process.cwd(), command, f);
      }),
    );
}
