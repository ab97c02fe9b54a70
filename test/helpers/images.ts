/**
 * Image builds in tests: one cache shared across test runs (a fresh CI machine builds once),
 * and a bounded probe that says why a build cannot happen here.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { archiveUnreachable, hostMirror } from '../../src/images/build/mirror.js';
import { recipeHash, resolveRecipe } from '../../src/images/build/recipe.js';

/** Where tests cache built image tarballs (kept between runs; keyed by recipe hash). */
export const TEST_IMAGE_CACHE = process.env.REALM_TEST_IMAGE_CACHE ?? '/var/cache/realm-test/images';

/** True when the tarball of this recipe is in the test cache already. */
export function cached(recipe: unknown): boolean {
  return existsSync(join(TEST_IMAGE_CACHE, `${recipeHash(resolveRecipe(recipe, hostMirror()))}.tar`));
}

/** Why images cannot be built here (no mmdebstrap, the archive does not answer), or undefined. */
export async function buildSkipReason(): Promise<string | undefined> {
  if (spawnSync('mmdebstrap', ['--version'], { stdio: 'ignore' }).status !== 0)
    return 'mmdebstrap is not installed (scripts/setup.sh installs it)';
  const why = await archiveUnreachable(hostMirror(), 'bookworm', 10_000);
  return why ? `the Debian archive is unreachable: ${why}` : undefined;
}
