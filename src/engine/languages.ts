/**
 * Languages are data: a TOML file each (image, file name, optional compile command, run command,
 * version command, aliases). realm ships some in `languages/`; users add their own in
 * `<data-dir>/languages/` with no code change.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { z } from 'zod';
import { runCommand } from '../util/run-command.js';

const languageSchema = z.object({
  name: z.string().regex(/^[a-z0-9][a-z0-9+#._-]*$/),
  aliases: z.array(z.string()).default([]),
  image: z.string().default('host'),
  file: z.string().regex(/^[A-Za-z0-9_.-]+$/),
  compile: z.array(z.string()).min(1).optional(),
  run: z.array(z.string()).min(1),
  version: z.array(z.string()).min(1).optional(),
  env: z.record(z.string(), z.string()).default({}),
}).strict();

export type Language = z.output<typeof languageSchema> & { source: string };

export interface LanguageInfo {
  name: string;
  aliases: string[];
  image: string;
  version: string;
  compiled: boolean;
}

export class Languages {
  private readonly byName = new Map<string, Language>();
  private readonly versions = new Map<string, Promise<string>>();
  readonly errors: string[] = [];

  constructor(dirs: string[]) {
    for (const dir of dirs) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir).filter((f) => f.endsWith('.toml')).sort()) {
        const path = join(dir, f);
        try {
          const lang = { ...languageSchema.parse(parse(readFileSync(path, 'utf8'))), source: path };
          // Later directories (the user's) override earlier ones (realm's).
          this.byName.set(lang.name, lang);
        } catch (e) {
          this.errors.push(`${path}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
    }
  }

  /** Find a language by name or alias (case-insensitive). */
  get(nameOrAlias: string): Language | undefined {
    const key = nameOrAlias.toLowerCase();
    const direct = this.byName.get(key);
    if (direct) return direct;
    for (const l of this.byName.values()) if (l.aliases.includes(key)) return l;
    return undefined;
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  /** Each language with its version, asked once of its toolchain and cached. */
  async list(): Promise<LanguageInfo[]> {
    const all = [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
    return Promise.all(all.map(async (l) => ({
      name: l.name,
      aliases: l.aliases,
      image: l.image,
      version: await this.version(l),
      compiled: !!l.compile,
    })));
  }

  private version(l: Language): Promise<string> {
    let v = this.versions.get(l.name);
    if (!v) {
      v = l.version && l.image === 'host'
        ? runCommand(l.version[0] ?? '', l.version.slice(1), { timeoutMs: 10_000, env: { PATH: '/usr/bin:/bin' } })
            .then((r) => /(\d+\.\d+(?:\.\d+)?)/.exec(r.stdout + r.stderr)?.[1] ?? 'unknown')
            .catch(() => 'unavailable')
        : Promise.resolve('unknown');
      this.versions.set(l.name, v);
    }
    return v;
  }
}
