/** Where realm's own files live, whether run from `dist/` or elsewhere. */
import { fileURLToPath } from 'node:url';
import { dirname, join, resolve } from 'node:path';

/** The repository (or installed package) root: dist/src/util/paths.js → ../../.. */
export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** Native helpers built by `scripts/build.sh` (override with REALM_NATIVE_DIR). */
export const NATIVE_DIR = process.env.REALM_NATIVE_DIR ?? join(PACKAGE_ROOT, 'build', 'native');

/** Language definitions shipped with realm. */
export const LANGUAGES_DIR = join(PACKAGE_ROOT, 'languages');

/** Image recipes shipped with realm (`realm image build NAME` finds NAME.toml here). */
export const IMAGE_RECIPES_DIR = join(PACKAGE_ROOT, 'images');
