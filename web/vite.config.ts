/**
 * The dashboard's build: `vite build web` (scripts/build.sh) bundles it into dist/web, which the
 * daemon serves at /ui/ (src/daemon/ui.ts). `npx vite web` serves it with hot reload, calling the
 * API of the daemon at REALM_URL (default http://127.0.0.1:7070) through Vite's proxy.
 */
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// Only the dev server reads it; web/tsconfig.json has no Node types (the app runs in a browser).
declare const process: { env: Record<string, string | undefined> };

export default defineConfig({
  base: '/ui/',
  plugins: [preact()],
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    // Hashed names under assets/: the daemon serves them as immutable.
    assetsDir: 'assets',
    reportCompressedSize: false,
  },
  server: {
    proxy: { '/v1': { target: process.env.REALM_URL ?? 'http://127.0.0.1:7070', ws: true } },
  },
});
