/** `realm apply --file realm.toml --version N`: sign a manifest with the owner key and apply it to the node. */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Command } from 'commander';
import type { ServiceChange } from '@realm/sdk';
import { RealmError } from '../../util/errors.js';
import { defaultKeyPath } from '../../config.js';
import type { ManifestApp, ManifestEntry } from '../../services/manifest-spec.js';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';

/** One line per change: `+ NAME`, `- NAME`, `~ NAME: field from → to, …` (an app: `+ app NAME`). */
export function changeLines(changes: ServiceChange[]): string {
  if (!changes.length) return 'no change\n';
  const v = (x: unknown): string => (typeof x === 'string' ? x : JSON.stringify(x));
  return changes
    .map((c) => [c, c.kind === 'app' ? `app ${c.name}` : c.name] as const)
    .map(([c, name]) =>
      c.change === 'added'
        ? `+ ${name}\n`
        : c.change === 'removed'
          ? `- ${name}\n`
          : `~ ${name}: ${c.fields.map((f) => `${f.field} ${v(f.from)} → ${v(f.to)}`).join(', ')}\n`,
    )
    .join('');
}

export interface ReadManifest {
  /** Each packaged service's package as its sha256 (what is signed). */
  services: Record<string, ManifestEntry>;
  /** Each app's module as its sha256 (what is signed). */
  apps: Record<string, ManifestApp>;
  /** The modules read from the files the apps name, base64 by sha256 (sent with the apply). */
  modules: Record<string, string>;
  /** The package files the services name, by sha256 (uploaded to the blob store before the apply). */
  packages: Record<string, string>;
}

/** The sha256 (hex) of a file, read as a stream (a package may be large). */
async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Read a manifest file: MANIFEST_INVALID names the file, key and line. Each app's `file` and each
 * service's `package` (relative to the TOML) is read and hashed; a `sha256` (`package_sha256`)
 * written beside it must be that hash.
 */
export async function readManifestFile(file: string): Promise<ReadManifest> {
  // realm's ES modules are reached by import() from the CLI's bundle (scripts/build.sh).
  const { parseManifestToml } = await import('../../services/manifest-toml.js');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RealmError('MANIFEST_INVALID', `cannot read ${file}: ${(e as Error).message}`);
  }
  let parsed: ReturnType<typeof parseManifestToml>;
  try {
    parsed = parseManifestToml(text);
  } catch (e) {
    if (e instanceof RealmError) throw new RealmError(e.code, `${file}: ${e.message}`);
    throw e;
  }
  const apps: Record<string, ManifestApp> = {};
  const modules: Record<string, string> = {};
  for (const [name, { file: module, sha256, ...limits }] of Object.entries(parsed.apps)) {
    let digest = sha256;
    if (module !== undefined) {
      const path = resolve(dirname(file), module);
      let bytes: Buffer;
      try {
        bytes = readFileSync(path);
      } catch (e) {
        throw new RealmError('MANIFEST_INVALID', `${file}: apps.${name}.file: cannot read ${path}: ${(e as Error).message}`);
      }
      digest = createHash('sha256').update(bytes).digest('hex');
      if (sha256 !== undefined && sha256 !== digest)
        throw new RealmError(
          'MANIFEST_DIGEST_MISMATCH',
          `${file}: apps.${name}: ${path} is sha256:${digest}, not sha256:${sha256} as the manifest says; fix the sha256 or leave it out`,
        );
      modules[digest] = bytes.toString('base64');
    }
    apps[name] = { sha256: digest!, ...limits };
  }
  const services: Record<string, ManifestEntry> = { ...parsed.services };
  const packages: Record<string, string> = {};
  for (const [name, { package: pkg, package_sha256: sha256, replicas }] of Object.entries(parsed.packaged)) {
    let digest = sha256;
    if (pkg !== undefined) {
      const path = resolve(dirname(file), pkg);
      try {
        digest = await fileSha256(path);
      } catch (e) {
        throw new RealmError(
          'MANIFEST_INVALID',
          `${file}: services.${name}.package: cannot read ${path}: ${(e as Error).message}`,
        );
      }
      if (sha256 !== undefined && sha256 !== digest)
        throw new RealmError(
          'MANIFEST_DIGEST_MISMATCH',
          `${file}: services.${name}: ${path} is sha256:${digest}, not sha256:${sha256} as the manifest says; fix the package_sha256 or leave it out`,
        );
      packages[digest] = path;
    }
    services[name] = { package_sha256: digest!, replicas };
  }
  return { services, apps, modules, packages };
}

export function register(program: Command): void {
  program
    .command('apply')
    .description(
      "sign a TOML manifest of services (image + command, or a package) and wasm apps with the owner key and apply it (uploading the packages and the apps' module files): the node checks key, signature, version and digests first; services and apps it drops that an earlier manifest had are removed, ad-hoc ones left alone",
    )
    .requiredOption('-f, --file <toml>', 'the manifest ([services.NAME] and [apps.NAME] tables)')
    .requiredOption('--version <n>', 'its version: above the last applied with this key')
    .option('--key <file>', `the owner key (default ${defaultKeyPath()})`)
    .option('--json', 'print JSON')
    .action(
      action(async (f: { file: string; version: string; key?: string; json?: boolean }) => {
        if (!/^[1-9]\d{0,15}$/.test(f.version))
          throw new RealmError('INVALID_REQUEST', `--version ${f.version}: write a whole number from 1`);
        const version = Number(f.version);
        const { services, apps, modules, packages } = await readManifestFile(f.file);
        const { loadKeyFile } = await import('../../signing/key-file.js');
        const { signPayload } = await import('../../signing/keys.js');
        const { manifestOf } = await import('../../services/manifest-spec.js');
        const key = loadKeyFile(f.key ?? defaultKeyPath());
        const manifest = manifestOf(services, version, apps);
        const signature = signPayload(key.privateKey, manifest);
        const c = await client();
        // Unpinned, as `package deploy` uploads one: the service holds its package once deployed.
        for (const [sha, path] of Object.entries(packages)) {
          const { digest } = await c.blobs.put(path, { pin: false });
          if (digest !== `sha256:${sha}`)
            throw new RealmError(
              'MANIFEST_DIGEST_MISMATCH',
              `${path} changed while it was applied (signed as sha256:${sha}, uploaded as ${digest}); apply again`,
            );
        }
        const r = await c.manifest.apply({ manifest, signature, publicKey: key.publicKey, version, modules });
        if (f.json) return printJson(r);
        process.stdout.write(
          `applied version ${r.version}, signed by ${r.owner.fingerprint}${r.trusted === 'first-use' ? ' (the node trusts this key from now on: first use)' : ''}\n${changeLines(r.changes)}`,
        );
      }),
    );
}
