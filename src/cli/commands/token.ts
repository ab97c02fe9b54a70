import type { Command } from 'commander';
import { tokens } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const tok = program.command('token').description('API tokens for TCP clients; a token acts as the user who made it');
  tok
    .command('create')
    .description('create a token and print it (shown this once)')
    .option('--name <name>', 'what the token is for', 'token')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { name: string; json?: boolean }) => {
        const t = await tokens.create(f.name, await client());
        if (f.json) printJson(t);
        else process.stdout.write(`${t.token}\n`);
      }),
    );
  tok
    .command('ls')
    .description('list tokens (never their secrets)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await tokens.list(await client());
        if (f.json) printJson(list);
        else
          printTable(
            ['ID', 'NAME', 'OWNER', 'CREATED'],
            list.map((t) => [t.id, t.name, t.owner ?? 'none (old: no longer works)', ago(t.createdAt)]),
          );
      }),
    );
  tok
    .command('revoke')
    .description('revoke tokens')
    .argument('<ids...>', 'token ids (`realm token ls`)')
    .action(
      action(async (ids: string[]) => {
        const c = await client();
        for (const id of ids) {
          await tokens.revoke(id, c);
          process.stdout.write(`${id}\n`);
        }
      }),
    );
}
