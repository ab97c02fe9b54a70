/** `realm package create|inspect|deploy`: a service with its mounts, as one `.realm` file. */
import { readFile, writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const pkg = program
    .command('package')
    .description(
      'packages: a service (component or image + command) with its static, config, work and state mounts, in one .realm file',
    );
  pkg
    .command('create')
    .description(
      'pack DIR (its realm-package.toml and the directories it names) into a .realm file; the same DIR gives the same bytes',
    )
    .argument('<dir>')
    .option('--out <file>', 'where to write it (default: NAME-VERSION.realm)')
    .action(
      action(async (dir: string, f: { out?: string }) => {
        const { createPackage } = await import('../../packages/archive.js');
        const { bytes, digest, manifest } = await createPackage(dir);
        const out = f.out ?? `${manifest.name}-${manifest.version}.realm`;
        await writeFile(out, bytes);
        process.stdout.write(`${out} ${digest} ${bytes.length} bytes\n`);
      }),
    );
  pkg
    .command('inspect')
    .description("a .realm file's manifest and entries (read and checked, nothing written)")
    .argument('<file>')
    .option('--json', 'print JSON')
    .action(
      action(async (file: string, f: { json?: boolean }) => {
        const { scanPackage } = await import('../../packages/archive.js');
        const s = await scanPackage(await readFile(file));
        const entries = [...s.entries].map(([path, e]) => ({ path, ...e }));
        if (f.json) return printJson({ digest: s.digest, unpackedBytes: s.unpackedBytes, manifest: s.manifest, entries });
        const m = s.manifest;
        process.stdout.write(
          `${m.name} ${m.version} ${s.digest}\n` +
            (m.service.component
              ? `component ${m.service.component}\n`
              : `image ${m.service.image ?? ''}, port ${m.service.port ?? ''}: ${m.service.command ?? ''}\n`) +
            `${entries.length} entries, ${s.unpackedBytes} bytes unpacked\n`,
        );
        if (m.mounts.length)
          printTable(
            ['KIND', 'PATH', 'SOURCE'],
            m.mounts.map((x) => [x.kind, x.path, x.source ?? '-']),
          );
      }),
    );
  pkg
    .command('deploy')
    .description('upload a .realm file and start (or upgrade) its service; state volumes are seeded on the first deploy only')
    .argument('<file>')
    .option('--name <name>', "the service's name (default: the package's)")
    .option('--json', 'print JSON')
    .action(
      action(async (file: string, f: { name?: string; json?: boolean }) => {
        const c = await client();
        const d = await c.packages.deploy(file, f.name ? { name: f.name } : {});
        if (f.json) return printJson(d);
        process.stdout.write(
          `${d.name}: ${d.package.name} ${d.package.version} (${d.package.digest.slice(0, 19)}) deployed` +
            (d.seeded.length ? `; seeded ${d.seeded.join(', ')}` : '') +
            `\n`,
        );
      }),
    );
}
