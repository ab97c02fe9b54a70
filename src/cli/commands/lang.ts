/** `realm lang ls`: the languages one-shot runs offer. */
import type { Command } from 'commander';
import { languages } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const lang = program.command('lang').description('languages for one-shot runs');
  lang
    .command('ls')
    .description('list languages with versions and aliases')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await languages(await client());
        if (f.json) printJson(list);
        else {
          printTable(
            ['NAME', 'VERSION', 'ALIASES', 'IMAGE', 'COMPILED'],
            list.map((l) => [l.name, l.version, l.aliases.join(', '), l.image, l.compiled ? 'yes' : 'no']),
          );
          const missing = [...new Set(list.filter((l) => !l.ready).map((l) => l.image))];
          for (const m of missing) process.stdout.write(`\nimage "${m}" is not built: realm image build ${m}\n`);
        }
      }),
    );
}
