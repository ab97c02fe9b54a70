/** `realm node trust KEY`, `node trusted`, `node untrust KEY`: the owner keys whose signed manifests a node takes. */
import type { Command } from 'commander';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson, printTable } from '../output.js';

export function registerTrust(node: Command): void {
  node
    .command('trust')
    .description('trust an owner key (what `realm key show` prints); this also ends trust on first use')
    .argument('<key>', 'realm-ed25519:…')
    .option('--json', 'print JSON')
    .action(
      action(async (key: string, f: { json?: boolean }) => {
        const k = await (await client()).manifest.trust(key);
        if (f.json) printJson(k);
        else process.stdout.write(`trusted ${k.fingerprint}\n`);
      }),
    );
  node
    .command('trusted')
    .description('list the owner keys this node trusts')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const r = await (await client()).manifest.trusted();
        if (f.json) return printJson(r);
        if (!r.keys.length) {
          process.stdout.write(
            r.firstUseOpen ? "no key yet: the first signed manifest's key will be trusted\n" : 'no key: `realm node trust KEY`\n',
          );
          return;
        }
        printTable(
          ['FINGERPRINT', 'HOW', 'ADDED', 'PUBLIC KEY'],
          r.keys.map((k) => [k.fingerprint, k.how, new Date(k.addedAt).toISOString(), k.publicKey]),
        );
      }),
    );
  node
    .command('untrust')
    .description('stop trusting an owner key (by fingerprint or public key); no key is then trusted on first use')
    .argument('<key>')
    .action(
      action(async (key: string) => {
        const k = await (await client()).manifest.revoke(key);
        process.stdout.write(`no longer trusted: ${k.fingerprint}\n`);
      }),
    );
}
