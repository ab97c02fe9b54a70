/**
 * An image recipe: which Debian suite, which packages, which mirror, which extra files. A recipe
 * is hashed (with the builder's version) to key the build cache: the same recipe is never built
 * twice.
 *
 * @example
 * const r = resolveRecipe({ from: 'debian:bookworm', packages: ['python3'] }, 'http://deb.debian.org/debian');
 * recipeHash(r); // 'a1b2…' (64 hex digits)
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'smol-toml';
import { z } from 'zod';
import { RealmError } from '../../util/errors.js';

/** Bump when a change to the builder changes what a recipe produces (it re-keys the cache). */
export const BUILDER_VERSION = 2;

/** Debian package names (policy §5.6.1), optionally with an architecture qualifier. */
const PACKAGE_RE = /^[a-z0-9][a-z0-9+.-]{1,99}(:[a-z0-9-]+)?$/;
const SUITE_RE = /^[a-z][a-z0-9-]{1,31}$/;
/** Absolute paths of plain names only: no `..`, no spaces, nothing a shell would read. */
const FILE_PATH_RE = /^(\/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)+$/;
/**
 * The same, with `*` (expanded by the shell of the build hook; nothing else it would read) after
 * a first component that is a plain name.
 */
const GLOB_RE = /^\/[A-Za-z0-9_+-][A-Za-z0-9_.+-]*(\/[A-Za-z0-9_+*-][A-Za-z0-9_.+*-]*)*$/;
/** Kernel file systems mounted in the tree while it is built: never written or removed. */
const MOUNTED_RE = /^\/(proc|sys|dev)(\/|$)/;

/** A build's name is an image name of the store (one path component, no tag): see ../ref.ts. */
export const imageNameSchema = z.string().regex(/^(?=.{1,63}$)[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/, 'image names are lower-case letters and digits, joined by single . or _ (or __, or dashes), at most 63, e.g. langs or py3.12');

export const recipeInputSchema = z.object({
  /** `debian:SUITE`, e.g. `debian:bookworm`. */
  from: z.string().max(64).refine((f) => /^debian:/.test(f) && SUITE_RE.test(f.slice(7)), 'from is debian:SUITE, e.g. debian:bookworm (only Debian is supported)'),
  packages: z.array(z.string().regex(PACKAGE_RE, 'package names are lower-case letters, digits and + . - (Debian policy), e.g. python3')).max(1000).default([]),
  /** A Debian mirror URL; default: the one this host's apt uses. */
  mirror: z.string().max(512).regex(/^https?:\/\/[^\s'"]+$/, 'mirror is an http(s) URL, e.g. http://deb.debian.org/debian').optional(),
  /** Extra files written into the image (path → content), e.g. type declarations. */
  files: z.record(z.string().max(512).regex(FILE_PATH_RE, 'file paths are absolute, of letters, digits and _ . + -').refine((p) => !MOUNTED_RE.test(p), 'files cannot go under /proc, /sys or /dev'), z.string().max(1024 * 1024)).default({}),
  /** Paths (globs allowed) removed after the packages are installed, to keep the image small. */
  remove: z.array(z.string().max(512).regex(GLOB_RE, 'remove paths are absolute, of letters, digits and _ . + - * (a glob, not in the first component)').refine((p) => !MOUNTED_RE.test(p), 'nothing under /proc, /sys or /dev can be removed')).max(200).default([]),
}).strict();
export type RecipeInput = z.input<typeof recipeInputSchema>;

/** A recipe with every default filled in: what the cache key is made of. */
export interface Recipe {
  distribution: 'debian';
  suite: string;
  /** Sorted, without duplicates. */
  packages: string[];
  mirror: string;
  files: Record<string, string>;
  remove: string[];
}

/** Validate a recipe and fill in its defaults; the mirror defaults to `defaultMirror`. */
export function resolveRecipe(input: unknown, defaultMirror: string): Recipe {
  const parsed = recipeInputSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new RealmError('IMAGE_RECIPE_INVALID', `bad image recipe: ${issue ? `${issue.path.join('.') || 'recipe'}: ${issue.message}` : 'invalid'}`);
  }
  const r = parsed.data;
  const files: Record<string, string> = {};
  for (const k of Object.keys(r.files).sort()) files[k] = r.files[k] ?? '';
  return {
    distribution: 'debian',
    suite: r.from.slice('debian:'.length),
    packages: [...new Set(r.packages)].sort(),
    mirror: (r.mirror ?? defaultMirror).replace(/\/+$/, ''),
    files,
    remove: r.remove,
  };
}

/** The cache key of a recipe: sha256 over its canonical JSON and the builder's version. */
export function recipeHash(r: Recipe): string {
  const canonical = JSON.stringify({ builder: BUILDER_VERSION, distribution: r.distribution, suite: r.suite, packages: r.packages, mirror: r.mirror, files: r.files, remove: r.remove });
  return createHash('sha256').update(canonical).digest('hex');
}

/**
 * A named recipe file (`NAME.toml`) from the first directory that has one, or undefined. realm
 * ships `images/`; operators add theirs in `<data-dir>/recipes/` (searched first).
 */
export function findRecipe(name: string, dirs: string[]): { path: string; input: unknown } | undefined {
  if (!imageNameSchema.safeParse(name).success) return undefined; // never a path out of dirs
  for (const dir of dirs) {
    const path = join(dir, `${name}.toml`);
    if (!existsSync(path)) continue;
    try {
      return { path, input: parse(readFileSync(path, 'utf8')) };
    } catch (e) {
      throw new RealmError('IMAGE_RECIPE_INVALID', `${path} is not valid TOML: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return undefined;
}

/** POST /v1/images/build: an image name and a recipe, or only a name that has a recipe file. */
export const buildImageSchema = z.object({
  name: imageNameSchema,
  from: recipeInputSchema.shape.from.optional(),
  // Without defaults: a request that gives only a name means the recipe file of that name.
  packages: recipeInputSchema.shape.packages.unwrap().optional(),
  mirror: recipeInputSchema.shape.mirror,
  files: recipeInputSchema.shape.files.unwrap().optional(),
  remove: recipeInputSchema.shape.remove.unwrap().optional(),
  /** Build even when the cache holds this recipe. */
  noCache: z.boolean().default(false),
}).strict();
export type BuildImageInput = z.input<typeof buildImageSchema>;

/**
 * The recipe a build request means: its own fields when it gives `from`, else the recipe file
 * named like the image. Validated here, so a bad request fails before any work starts.
 */
export function requestRecipe(req: z.output<typeof buildImageSchema>, dirs: string[]): unknown {
  const { name, noCache: _n, ...rest } = req;
  void _n;
  if (rest.from === undefined) {
    if (Object.values(rest).some((v) => v !== undefined)) throw new RealmError('IMAGE_RECIPE_INVALID', 'give `from` (e.g. debian:bookworm) with packages, mirror, files or remove');
    const found = findRecipe(name, dirs);
    if (!found) throw new RealmError('IMAGE_RECIPE_INVALID', `no recipe named "${name}" (looked in ${dirs.join(', ')}); give --from debian:SUITE and --packages, or add ${name}.toml to one of those directories`);
    resolveRecipe(found.input, 'http://localhost');
    return found.input;
  }
  resolveRecipe(rest, 'http://localhost');
  return rest;
}
