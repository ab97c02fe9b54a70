/** `realm node`: the cluster's nodes (this node alone without --cluster): ls, inspect, drain, tag; trust (trust.ts). */
import type { Command } from 'commander';
import type { ClusterNode } from '@realm/sdk';
import { RealmError } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';
import { registerTrust } from './trust.js';

function row(n: ClusterNode): string[] {
  const r = n.report;
  return [
    `${n.id}${n.self ? ' *' : ''}`,
    n.address,
    n.fenced ? `${n.state} (fenced)` : n.state,
    n.tags.join(',') || '-',
    r ? r.drivers.join(',') : '-',
    r ? `${r.load.sandboxes}/${r.capacity.sandboxes}` : '-',
    r ? String(r.load.loadAvg1) : '-',
    r ? ago(r.startedAt) : '-',
  ];
}

export function register(program: Command): void {
  const node = program
    .command('node')
    .description("the cluster's nodes: ls, inspect, drain, tag (any node answers for all); trust, trusted, untrust: owner keys");

  node
    .command('ls')
    .description('list the nodes (* marks the one answering)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const list = await (await client()).nodes.list();
        if (f.json) printJson(list);
        else printTable(['ID', 'ADDRESS', 'STATE', 'TAGS', 'DRIVERS', 'SANDBOXES', 'LOAD', 'STARTED'], list.map(row));
      }),
    );

  node
    .command('inspect')
    .description('show one node as JSON')
    .argument('<id>', 'node id')
    .action(
      action(async (id: string) => {
        printJson(await (await client()).nodes.get(id));
      }),
    );

  node
    .command('drain')
    .description('place no new work on a node (what runs there goes on); --off to take work again')
    .argument('<id>', 'node id')
    .option('--off', 'end the drain')
    .option('--json', 'print JSON')
    .action(
      action(async (id: string, f: { off?: boolean; json?: boolean }) => {
        const n = await (await client()).nodes.drain(id, !f.off);
        if (f.json) printJson(n);
        else process.stdout.write(`${n.id}: ${n.state}\n`);
      }),
    );

  node
    .command('rm')
    .description('forget retired nodes (only nodes that are down; root)')
    .argument('<ids...>', 'node ids')
    .action(
      action(async (ids: string[]) => {
        const c = await client();
        for (const id of ids) await c.nodes.remove(id);
      }),
    );

  node
    .command('tag')
    .description('add (+TAG) and remove (-TAG) tags of a node, e.g. realm node tag n1 +gpu -old')
    .argument('<id>', 'node id')
    .argument('<changes...>', '+TAG to add, -TAG to remove')
    .option('--json', 'print JSON')
    // -TAG is a change, not an option.
    .allowUnknownOption()
    .action(
      action(async (id: string, changes: string[], f: { json?: boolean }) => {
        const add: string[] = [];
        const remove: string[] = [];
        for (const ch of changes) {
          if (ch.startsWith('+') && ch.length > 1) add.push(ch.slice(1));
          else if (ch.startsWith('-') && ch.length > 1) remove.push(ch.slice(1));
          else throw new RealmError('INVALID_REQUEST', `${ch}: write +TAG to add a tag or -TAG to remove one`);
        }
        const n = await (await client()).nodes.tag(id, { add, remove });
        if (f.json) printJson(n);
        else process.stdout.write(`${n.id}: ${n.tags.join(', ') || 'no tags'}\n`);
      }),
    );

  registerTrust(node);
}
