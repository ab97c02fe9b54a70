import type { Command } from 'commander';
import { Sandbox, workspaces } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList, pairs } from '../action.js';
import { DEFAULT_SHELL, attachTerminal } from '../terminal.js';
import { ago, printJson, printTable } from '../output.js';

interface WsFlags {
  image?: string;
  network?: string;
  env: string[];
  detach?: boolean;
  path?: boolean;
  delete?: boolean;
  json?: boolean;
}

export function register(program: Command): void {
  program
    .command('ws')
    .description('workspaces: a private clone of the current git repository in a sandbox, for coding agents')
    .argument('[name]', 'workspace name (none: list workspaces)')
    .argument('[command...]', 'what to run (default: a shell in /workspace)')
    .option('--image <image>', 'image when creating (default REALM_DEFAULT_IMAGE or host)')
    .option('--network <mode>', 'network when creating: all (default) or none')
    .option('--env <K=V>', 'environment variable when creating (repeatable)', collectList, [])
    .option('-d, --detach', 'run the command in the background and return')
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
      const argv = command.length ? command : DEFAULT_SHELL;
      if (f.detach) {
        const p = await sb.processes.start(argv, { cwd: '/workspace' });
        process.stdout.write(`${p.id}\n`);
        return;
      }
      await attachTerminal(sb, argv, '/workspace');
    }));
}
