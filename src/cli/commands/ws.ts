import type { Command } from 'commander';
import { RealmError, Sandbox, workspaces } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList, pairs } from '../action.js';
import { DEFAULT_SHELL, attachTerminal } from '../terminal.js';
import { ago, printJson, printTable } from '../output.js';

interface WsFlags {
  image?: string;
  network?: string;
  env: string[];
  detach?: boolean;
  logs?: boolean;
  path?: boolean;
  delete?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('ws')
    .description('workspaces: a private clone of the current git repository in a sandbox, for coding agents (Ctrl-P Ctrl-Q detaches)')
    .argument('[name]', 'workspace name (none: list workspaces)')
    .argument('[command...]', 'what the session runs (default: a shell in /workspace)')
    .option('--image <image>', 'image when creating (default REALM_DEFAULT_IMAGE or host)')
    .option('--network <mode>', 'network when creating: all (default) or none')
    .option('--env <K=V>', 'environment variable when creating (repeatable)', collectList, [])
    .option('-d, --detach', 'start the session in the background and return')
    .option('--logs', 'print what the workspace\'s session printed (the last 1 MiB)')
    .option('--path', 'print the clone\'s path on this host (git fetch from it)')
    .option('--delete', 'remove the workspace: its sandbox and its clone, never your repository')
    .option('--json', 'print JSON')
    .action(action(async (name: string | undefined, command: string[], f: WsFlags) => {
      const c = await client();
      if (!name) {
        const list = await workspaces.list(c);
        if (f.json) return printJson(list);
        return printTable(['NAME', 'PROJECT', 'STATUS', 'IMAGE', 'CREATED'], list.map((w) => [w.name, w.project, w.sandbox.status, w.sandbox.image, ago(w.sandbox.createdAt)]));
      }
      if (f.delete) {
        await workspaces.delete(name, c);
        process.stdout.write(`${name} deleted\n`);
        return;
      }
      if (f.path) {
        const path = (await workspaces.get(name, c)).path;
        process.stdout.write(`${path}\n`);
        // The clone belongs to the sandbox's uid, so git asks for it to be trusted explicitly.
        if (process.stderr.isTTY) process.stderr.write(`realm: fetch the agent's commits with: git fetch --upload-pack='git -c safe.directory=${path}/.git upload-pack' ${path} HEAD\n`);
        return;
      }
      const image = f.image ?? process.env.REALM_DEFAULT_IMAGE;
      const network = (f.network ?? process.env.REALM_DEFAULT_NETWORK) as 'none' | 'all' | undefined;
      const ws = await workspaces.open(name, process.cwd(), { ...(image ? { image } : {}), ...(network ? { network } : {}), env: pairs(f.env, '--env') }, c);
      process.stderr.write(ws.created ? `realm: created workspace ${name} (a clone of ${ws.project})\n` : `realm: resumed workspace ${name}\n`);
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
        throw new RealmError('WORKSPACE_BUSY', `workspace ${name} already runs ${session.info.command.join(' ')}; attach with \`realm ws ${name}\`, or end that first`);
      }
      session ??= await sb.processes.start(command.length ? command : DEFAULT_SHELL, { cwd: '/workspace', tty: true, rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
      if (f.detach) {
        process.stdout.write(`${session.id}\n`);
        return;
      }
      const s = session;
      const detached = await attachTerminal(async (size) => {
        const term = await s.attach();
        term.resize(size.rows, size.cols);
        return term;
      }, true);
      if (detached) process.stderr.write(`\r\nrealm: detached from workspace ${name}; \`realm ws ${name}\` attaches again\n`);
    }));
}
