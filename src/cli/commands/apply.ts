/** `realm apply --file realm.toml --version N`: sign a manifest with the owner key and apply it to the node. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ServiceChange } from '@realm/sdk';
import { RealmError } from '../../util/errors.js';
import { defaultKeyPath } from '../../config.js';
import type { ManifestService } from '../../services/manifest-spec.js';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';

/** One line per change: `+ NAME`, `- NAME`, `~ NAME: field from → to, …`. */
export function changeLines(changes: ServiceChange[]): string {
  if (!changes.length) return 'no change\n';
  const v = (x: unknown): string => (typeof x === 'string' ? x : JSON.stringify(x));
  return changes
    .map((c) =>
      c.change === 'added'
        ? `+ ${c.name}\n`
        : c.change === 'removed'
          ? `- ${c.name}\n`
          : `~ ${c.name}: ${c.fields.map((f) => `${f.field} ${v(f.from)} → ${v(f.to)}`).join(', ')}\n`,
    )
    .join('');
}

/** Read a manifest file: MANIFEST_INVALID names the file, key and line. */
export async function readManifestFile(file: string): Promise<Record<string, ManifestService>> {
  // realm's ES modules are reached by import() from the CLI's bundle (scripts/build.sh).
  const { parseManifestToml } = await import('../../services/manifest-toml.js');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RealmError('MANIFEST_INVALID', `cannot read ${file}: ${(e as Error).message}`);
  }
  try {
    return parseManifestToml(text);
  } catch (e) {
    if (e instanceof RealmError) throw new RealmError(e.code, `${file}: ${e.message}`);
    throw e;
  }
}

export function register(program: Command): void {
  program
    .command('apply')
    .description(
      'sign a TOML manifest of services with the owner key and apply it: the node checks key, signature, version and digests first; services it drops that an earlier manifest had are removed, ad-hoc ones left alone',
    )
    .requiredOption('-f, --file <toml>', 'the manifest ([services.NAME] tables)')
    .requiredOption('--version <n>', 'its version: above the last applied with this key')
    .option('--key <file>', `the owner key (default ${defaultKeyPath()})`)
    .option('--json', 'print JSON')
    .action(
      action(async (f: { file: string; version: string; key?: string; json?: boolean }) => {
        if (!/^[1-9]\d{0,15}$/.test(f.version))
          throw new RealmError('INVALID_REQUEST', `--version ${f.version}: write a whole number from 1`);
        const version = Number(f.version);
        const services = await readManifestFile(f.file);
        const { loadKeyFile } = await import('../../signing/key-file.js');
        const { signPayload } = await import('../../signing/keys.js');
        const { manifestOf } = await import('../../services/manifest-spec.js');
        const key = loadKeyFile(f.key ?? defaultKeyPath());
        const manifest = manifestOf(services, version);
        const signature = signPayload(key.privateKey, manifest);
        const r = await (await client()).manifest.apply({ manifest, signature, publicKey: key.publicKey, version });
        if (f.json) return printJson(r);
        process.stdout.write(
          `applied version ${r.version}, signed by ${r.owner.fingerprint}${r.trusted === 'first-use' ? ' (the node trusts this key from now on: first use)' : ''}\n${changeLines(r.changes)}`,
        );
      }),
    );
}
