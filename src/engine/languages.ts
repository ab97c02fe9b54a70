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

const languageSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9+#._-]*$/),
    aliases: z.array(z.string()).default([]),
    image: z.string().default('host'),
    file: z.string().regex(/^[A-Za-z0-9_.-]+$/),
    compile: z.array(z.string()).min(1).optional(),
    run: z.array(z.string()).min(1),
    version: z.array(z.string()).min(1).optional(),
    env: z.record(z.string(), z.string()).default({}),
    /**
     * Its interpreter may start before its run comes, in a warm sandbox: it must open its main
     * file (`file`, named in `run`) once, when it has started, and read it through — realm holds
     * it there until the run's files and stdin are in place (python).
     */
    ahead: z.boolean().default(false),
    /** The driver the program must run on (wasm modules: `wasm`); any when left out. */
    driver: z.enum(['namespace', 'gvisor', 'microvm', 'wasm']).optional(),
  })
  .strict();

export type Language = z.output<typeof languageSchema> & { source: string };

export interface LanguageInfo {
  name: string;
  aliases: string[];
  image: string;
  version: string;
  compiled: boolean;
  /** False when its image is not built on this node (`realm image build IMAGE`). */
  ready: boolean;
}

/**
 * Asks a language's toolchain for its version: `key` names what the answer depends on (the
 * image's content), `run` gives the version command's output; `ready` is false when the image
 * is missing (then nothing is run).
 */
export interface VersionProbe {
  ready(l: Language): boolean;
  key(l: Language): string;
  run(l: Language, argv: string[]): Promise<string>;
}

/** The host's tools, for `host`-image languages (the default probe). */
const hostProbe: VersionProbe = {
  ready: (l) => l.image === 'host',
  key: () => 'host',
  run: async (_l, argv) => {
    const r = await runCommand(argv[0] ?? '', argv.slice(1), { timeoutMs: 10_000, env: { PATH: '/usr/bin:/bin' } });
    return r.stdout + r.stderr;
  },
};

/**
 * The probe for languages in images: `host` ones ask the host's tools; the others run their
 * version command in a throwaway sandbox of their image, cached per image root (an image of the
 * store is unpacked under its digest: a rebuilt image is a new root).
 */
export function imageVersionProbe(deps: {
  /** The image's root (throws when it is not there). */
  resolve(image: string): string;
  run(image: string, argv: string[], env: Record<string, string>): Promise<string>;
}): VersionProbe {
  const has = (image: string): boolean => {
    try {
      deps.resolve(image);
      return true;
    } catch {
      return false;
    }
  };
  return {
    ready: (l) => l.image === 'host' || has(l.image),
    key: (l) => (l.image === 'host' ? 'host' : deps.resolve(l.image)),
    run: (l, argv) => (l.image === 'host' ? hostProbe.run(l, argv) : deps.run(l.image, argv, l.env)),
  };
}

export class Languages {
  private readonly byName = new Map<string, Language>();
  private readonly versions = new Map<string, Promise<string>>();
  readonly errors: string[] = [];

  constructor(
    dirs: string[],
    private readonly probe: VersionProbe = hostProbe,
  ) {
    for (const dir of dirs) {
      if (!existsSync(dir)) continue;
      for (const f of readdirSync(dir)
        .filter((f) => f.endsWith('.toml'))
        .sort()) {
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

  /** Each language with its version, asked once of its toolchain (in its image) and cached. */
  async list(): Promise<LanguageInfo[]> {
    const all = [...this.byName.values()].sort((a, b) => a.name.localeCompare(b.name));
    // One at a time: image-based versions each start a sandbox.
    const out: LanguageInfo[] = [];
    for (const l of all) {
      const ready = this.probe.ready(l);
      out.push({
        name: l.name,
        aliases: l.aliases,
        image: l.image,
        version: ready ? await this.version(l) : 'not built',
        compiled: !!l.compile,
        ready,
      });
    }
    return out;
  }

  private version(l: Language): Promise<string> {
    if (!l.version) return Promise.resolve('unknown');
    const key = `${l.name}\0${this.probe.key(l)}`;
    let v = this.versions.get(key);
    if (!v) {
      const argv = l.version;
      v = this.probe
        .run(l, argv)
        .then((out) => /(\d+\.\d+(?:\.\d+)?)/.exec(out)?.[1] ?? 'unknown')
        .catch(() => 'unavailable');
      this.versions.set(key, v);
      // A failure is not remembered: the next listing asks again.
      void v.then((x) => {
        if (x === 'unavailable') this.versions.delete(key);
      });
    }
    return v;
  }
}
