/**
 * The web dashboard's files (built from web/ into dist/web by scripts/build.sh) at /ui/, and `/`
 * sending browsers there. Mounted after the browser guard (Host, Origin still hold) and before
 * identify: the files are the same public bundle for everyone and carry no data; every datum the
 * dashboard shows comes from the API, which wants the session (routes/ui-session.ts) or a token.
 *
 * A middleware rather than routes: these are not API operations (the OpenAPI document lists
 * those). Hashed files under assets/ never change and are cached for a year; anything else
 * under /ui/ that is not a file is a page of the app (client-side routes), answered with
 * index.html, which is never cached (it names the current hashes).
 */
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Context, MiddlewareHandler } from 'hono';
import { RealmError } from '../util/errors.js';

/** dist/web beside dist/src (this file is dist/src/daemon/ui.js once built). */
export const WEB_DIR = fileURLToPath(new URL('../../web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.css', '.svg', '.json', '.map', '.txt']);

/**
 * What the dashboard's pages may load: only this origin (no CDN, no inline script). Styles may be
 * inline (xterm.js and the charts set style attributes).
 */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface Served {
  body: Buffer;
  gzip: Buffer | undefined;
  type: string;
}

/** Files as read once: a build replaces them all (new hashes), and a restart reads the new ones. */
const cache = new Map<string, Served>();

async function load(file: string): Promise<Served | undefined> {
  const hit = cache.get(file);
  if (hit) return hit;
  try {
    if (!(await stat(file)).isFile()) return undefined;
  } catch {
    return undefined;
  }
  const body = await readFile(file);
  const ext = extname(file);
  const served: Served = {
    body,
    gzip: COMPRESSIBLE.has(ext) && body.length > 512 ? gzipSync(body, { level: 9 }) : undefined,
    type: TYPES[ext] ?? 'application/octet-stream',
  };
  cache.set(file, served);
  return served;
}

function send(c: Context, s: Served, cacheControl: string): Response {
  const gzip = s.gzip && /\bgzip\b/.test(c.req.header('accept-encoding') ?? '') ? s.gzip : undefined;
  const headers: Record<string, string> = {
    'Content-Type': s.type,
    'Cache-Control': cacheControl,
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    'X-Frame-Options': 'DENY',
    Vary: 'Accept-Encoding',
  };
  if (gzip) headers['Content-Encoding'] = 'gzip';
  const body = gzip ?? s.body;
  headers['Content-Length'] = String(body.length);
  return c.req.method === 'HEAD' ? c.body(null, 200, headers) : c.body(new Uint8Array(body), 200, headers);
}

/** The file under `dir` a /ui/… path names, or undefined when it climbs out (../) or is not decodable. */
function fileOf(dir: string, rel: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rel);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const file = normalize(join(dir, decoded));
  return file.startsWith(dir.endsWith(sep) ? dir : dir + sep) ? file : undefined;
}

/**
 * The middleware. `dir` is where the built files are (WEB_DIR unless a test says otherwise).
 * @example app.use('*', dashboard());
 */
export function dashboard(dir = WEB_DIR): MiddlewareHandler {
  return async (c, next) => {
    const method = c.req.method;
    const path = c.req.path;
    if ((method !== 'GET' && method !== 'HEAD') || (path !== '/' && path !== '/ui' && !path.startsWith('/ui/'))) return next();
    if (path === '/' || path === '/ui') return c.redirect('/ui/', 302);
    const rel = path.slice('/ui/'.length);
    const file = rel === '' ? undefined : fileOf(dir, rel);
    const asset = rel.startsWith('assets/');
    const found = file ? await load(file) : undefined;
    if (found) return send(c, found, asset ? 'public, max-age=31536000, immutable' : 'no-cache');
    // A missing hashed file is an old page asking for a build that is gone: no HTML in its place.
    if (asset) throw new RealmError('NOT_FOUND', `no file ${path}: the dashboard was rebuilt; reload the page`);
    const index = await load(join(dir, 'index.html'));
    if (!index)
      throw new RealmError(
        'NOT_FOUND',
        `the dashboard is not built in ${dir}: run scripts/build.sh (it bundles web/ into dist/web)`,
      );
    return send(c, index, 'no-cache');
  };
}
