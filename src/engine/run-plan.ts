/**
 * What a one-shot run of a language is made of, decided before anything is built: the driver it
 * goes to, its files, and whether its interpreter starts ahead.
 */
import type { DriverName, FileToWrite, ProgramAhead } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';
import { BASE_ENV } from './env.js';
import type { Language } from './languages.js';
import type { RunExtra } from './runs.js';
import type { RunOptions } from './schemas.js';

/**
 * The driver a run of this language goes to: the one it names, else the language's own, else the
 * node's default. A language bound to a driver (wasm modules) runs on that one only, and the wasm
 * driver runs only such languages.
 */
export function runDriver(lang: Language, asked: DriverName | undefined, byDefault: DriverName): DriverName {
  if (lang.driver && asked && asked !== lang.driver) {
    throw new RealmError(
      'INVALID_REQUEST',
      `${lang.name} runs on the ${lang.driver} driver only: leave \`driver\` out or set it to ${lang.driver}`,
    );
  }
  const driver = asked ?? lang.driver ?? byDefault;
  if (driver === 'wasm' && lang.driver !== 'wasm') {
    throw new RealmError(
      'INVALID_REQUEST',
      `the wasm driver runs WebAssembly (languages wasm, c-wasm), not ${lang.name}: pick another driver`,
    );
  }
  return driver;
}

/** A run's memory below this starts its interpreter with the run (one waiting holds ~3–6 MiB of its own). */
const AHEAD_MIN_MEMORY = 64 * 1024 ** 2;

/**
 * The interpreter of a run of a language that starts ahead (`ahead = true`: python), started in
 * its warm sandbox before the run comes and waiting on its main file: the same program, in the
 * same environment, as it would be started with the run. A run that gives it arguments or an
 * environment of its own, or too little memory, starts it with the run.
 */
export function programAhead(
  lang: Language,
  opts: Pick<RunOptions, 'args' | 'memory'>,
  extra?: RunExtra,
): ProgramAhead | undefined {
  if (!lang.ahead || lang.compile || opts.args.length > 0 || opts.memory < AHEAD_MIN_MEMORY) return undefined;
  if (extra?.env && Object.keys(extra.env).length > 0) return undefined;
  return { argv: [...lang.run], env: { ...BASE_ENV, ...lang.env }, lateFile: lang.file };
}

/** A run's files: the first is the main one and always goes where the language expects it. */
export function runFiles(lang: Language, opts: Pick<RunOptions, 'files' | 'code'>): FileToWrite[] {
  const files = opts.files?.length ? opts.files : [{ content: opts.code ?? '', encoding: 'utf8' as const }];
  const toWrite = files.map((f, i) => ({
    path: i === 0 ? lang.file : (f.name ?? `file${i}`),
    content: f.encoding === 'utf8' ? f.content : Buffer.from(f.content, f.encoding),
  }));
  const named = new Set<string>();
  for (const f of toWrite) {
    if (named.has(f.path)) {
      throw new RealmError(
        'INVALID_REQUEST',
        `two files are named ${f.path} (the first file is always ${lang.file} for ${lang.name}): give each its own name`,
      );
    }
    named.add(f.path);
  }
  return toWrite;
}
