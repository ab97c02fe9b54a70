/** `realm manifest status|export|diff`: the applied manifest, drift from it, and the desired state as TOML. */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ManifestApp, ManifestEntry } from '../../services/manifest-spec.js';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';
import { changeLines, readManifestFile } from './apply.js';

export function register(program: Command): void {
  const m = program
    .command('manifest')
    .description('the applied signed manifest: status, export (desired state as TOML), diff FILE');
  m.command('status')
    .description('the version applied, its owner key, the trusted keys and drift (live changes since)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const s = await (await client()).manifest.status();
        if (f.json) return printJson(s);
        const cur = s.current;
        process.stdout.write(
          `${cur ? `version ${cur.version}, signed by ${cur.owner.fingerprint}, applied ${cur.appliedAt} by ${cur.appliedBy}` : 'no manifest applied'}\n` +
            `trusted keys: ${s.trusted.map((k) => `${k.fingerprint} (${k.how})`).join(', ') || (s.firstUseOpen ? 'none yet (the first signed manifest’s key will be)' : 'none')}\n` +
            `drift:\n${changeLines(s.drift).replace(/^/gm, '  ')}` +
            (Object.keys(s.unmanaged).length
              ? `ad hoc (never in a manifest, left alone): ${Object.keys(s.unmanaged).join(', ')}\n`
              : '') +
            (Object.keys(s.unmanagedApps).length
              ? `apps ad hoc (never in a manifest, left alone): ${Object.keys(s.unmanagedApps).join(', ')}\n`
              : ''),
        );
      }),
    );
  m.command('export')
    .description('write the desired state (with live scale/push changes) as TOML that `realm apply` takes')
    .option('-f, --file <out>', 'write here instead of stdout')
    .option('--all', 'also the services and apps made ad hoc (applying the file then manages them)')
    .action(
      action(async (f: { file?: string; all?: boolean }) => {
        const s = await (await client()).manifest.status();
        const services = { ...s.services, ...(f.all ? s.unmanaged : {}) } as Record<string, ManifestEntry>;
        const header = [
          s.current
            ? `exported from version ${s.current.version} (signed by ${s.current.owner.fingerprint}) with live changes; apply with --version ${s.current.version + 1} or higher`
            : 'exported from a node with no manifest applied',
        ];
        const { manifestToml } = await import('../../services/manifest-toml.js');
        // Apps are written by module digest, as services name their image: the module stays on the node.
        const apps = { ...s.apps, ...(f.all ? s.unmanagedApps : {}) } as Record<string, ManifestApp>;
        const text = manifestToml(services, header, apps);
        if (f.file) writeFileSync(f.file, text);
        else process.stdout.write(text);
      }),
    );
  m.command('diff')
    .description('what `realm apply --file FILE` would change on the node (nothing is changed)')
    .argument('<file>')
    .option('--json', 'print JSON')
    .action(
      action(async (file: string, f: { json?: boolean }) => {
        const m = await readManifestFile(file);
        const r = await (await client()).manifest.diff(m.services, m.apps);
        if (f.json) return printJson(r);
        process.stdout.write(
          changeLines(r.changes) +
            (r.unmanaged.length ? `left alone (ad hoc, not in a manifest): ${r.unmanaged.join(', ')}\n` : '') +
            (r.unmanagedApps.length ? `apps left alone (ad hoc, not in a manifest): ${r.unmanagedApps.join(', ')}\n` : ''),
        );
      }),
    );
}
