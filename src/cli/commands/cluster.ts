/** `realm cluster invite`: a one-time token that lets one new node join (realm serve --join). */
import type { Command } from 'commander';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';

export function register(program: Command): void {
  const cluster = program.command('cluster').description('the cluster this node is in: invite a node');
  cluster
    .command('invite')
    .description('print a one-time token for `realm serve --cluster … --join TOKEN` on a new node (root)')
    .option('--ttl <duration>', 'how long it is good for', '1h')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { ttl: string; json?: boolean }) => {
        const inv = await (await client()).nodes.invite({ ttl: f.ttl });
        if (f.json) printJson(inv);
        else process.stdout.write(`${inv.token}\n`);
      }),
    );
}
