/**
 * Files of a sandbox: raw bytes for one file, JSON for listings and metadata, tar for trees.
 * `path` is absolute inside the sandbox, or relative to /home/user.
 */
import type { Context, Hono } from 'hono';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import { jsonBody } from '../body.js';
import { sandboxParam } from '../access.js';

export const mkdirSchema = z.object({ path: z.string(), parents: z.boolean().default(false) }).strict();
export const removeSchema = z.object({ path: z.string(), recursive: z.boolean().default(false) }).strict();
export const moveSchema = z.object({ from: z.string(), to: z.string() }).strict();

const flag = (v: string | undefined): boolean => v === '1' || v === 'true';

function octal(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  return /^[0-7]{1,4}$/.test(v) ? parseInt(v, 8) : NaN;
}

async function bytes(c: Context): Promise<Buffer> {
  return Buffer.from(await c.req.arrayBuffer());
}

export function fileRoutes(app: Hono, engine: Engine): void {
  const base = '/v1/sandboxes/:id/files';

  app.get(base, async (c) => {
    const data = await engine.files.read(sandboxParam(c), c.req.query('path') ?? '');
    return c.body(new Uint8Array(data), 200, { 'content-type': 'application/octet-stream' });
  });

  app.put(base, async (c) => {
    const mode = octal(c.req.query('mode'));
    await engine.files.write(sandboxParam(c), c.req.query('path') ?? '', await bytes(c), {
      ...(mode !== undefined ? { mode } : {}),
      parents: flag(c.req.query('parents')),
    });
    return c.body(null, 204);
  });

  app.get(`${base}/list`, async (c) =>
    c.json({ entries: await engine.files.list(sandboxParam(c), c.req.query('path') ?? '/home/user') }),
  );
  app.get(`${base}/stat`, async (c) => c.json(await engine.files.stat(sandboxParam(c), c.req.query('path') ?? '')));

  app.post(`${base}/mkdir`, async (c) => {
    const b = mkdirSchema.parse(await jsonBody(c));
    await engine.files.mkdir(sandboxParam(c), b.path, b.parents);
    return c.body(null, 204);
  });

  app.post(`${base}/remove`, async (c) => {
    const b = removeSchema.parse(await jsonBody(c));
    await engine.files.remove(sandboxParam(c), b.path, b.recursive);
    return c.body(null, 204);
  });

  app.post(`${base}/move`, async (c) => {
    const b = moveSchema.parse(await jsonBody(c));
    await engine.files.move(sandboxParam(c), b.from, b.to);
    return c.body(null, 204);
  });

  app.get(`${base}/tar`, async (c) => {
    const tar = await engine.files.download(sandboxParam(c), c.req.query('path') ?? '');
    return c.body(new Uint8Array(tar), 200, { 'content-type': 'application/x-tar' });
  });

  app.put(`${base}/tar`, async (c) => {
    await engine.files.upload(sandboxParam(c), c.req.query('path') ?? '/home/user', await bytes(c));
    return c.body(null, 204);
  });
}
