/** `realm key init|show`: the owner's ed25519 key, which signs manifests (`realm apply`). */
import type { Command } from 'commander';
import { defaultKeyPath } from '../../config.js';
import type { OwnerKey } from '../../signing/key-file.js';
import { action } from '../action.js';
import { printJson } from '../output.js';

const view = (k: OwnerKey): Record<string, string> => ({ path: k.path, publicKey: k.publicKey, fingerprint: k.fingerprint });

function print(k: OwnerKey, json: boolean | undefined, made: boolean): void {
  if (json) return printJson({ ...view(k), created: made });
  process.stdout.write(
    `${made ? `made an owner key at ${k.path} (mode 0600; keep it, and a copy somewhere safe)\n` : ''}${k.publicKey}\nfingerprint ${k.fingerprint}\n`,
  );
}

export function register(program: Command): void {
  const key = program
    .command('key')
    .description(`the owner key that signs manifests: init, show (default ${defaultKeyPath()}; REALM_CONFIG=DIR moves it)`);
  key
    .command('init')
    .description('make an ed25519 owner key (an existing key is never replaced)')
    .option('--key <file>', 'where to keep it')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { key?: string; json?: boolean }) => {
        const { createKeyFile } = await import('../../signing/key-file.js');
        print(createKeyFile(f.key ?? defaultKeyPath()), f.json, true);
      }),
    );
  key
    .command('show')
    .description('print the public key (what `realm node trust` takes) and its fingerprint')
    .option('--key <file>', 'the key file')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { key?: string; json?: boolean }) => {
        const { loadKeyFile } = await import('../../signing/key-file.js');
        print(loadKeyFile(f.key ?? defaultKeyPath()), f.json, false);
      }),
    );
}
