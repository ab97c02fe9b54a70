import type { Command } from 'commander';
import { volumes } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const vol = program.command('volume').description('list and remove named volumes');
  vol
    .command('ls')
    .description('list volumes')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await volumes.list(await client());
        if (f.json) printJson(list);
        else
          printTable(
            ['NAME', 'CREATED', 'USED BY'],
            list.map((v) => [v.name, ago(v.createdAt), v.usedBy.join(', ') || '-']),
          );
      }),
    );
  vol
    .command('rm')
    .description('remove volumes (refused while a sandbox mounts one)')
    .argument('<names...>', 'volume names')
    .action(
      action(async (names: string[]) => {
        const c = await client();
        for (const n of names) {
          await volumes.remove(n, c);
          process.stdout.write(`${n}\n`);
        }
      }),
    );
}
