/**
 * Images: list, inspect, remove, prune, import (a tarball body streamed to disk), export (a tar
 * download) and pull (progress as Server-Sent Events).
 */
import { Readable } from 'node:stream';
import type { ReadableStream as WebReadable } from 'node:stream/web';
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import type { ImageProgress } from '../../images/assemble.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { jsonBody } from '../body.js';
import { zodMessage } from '../errors.js';
import { streamProgress } from '../sse.js';
import { buildImageSchema, requestRecipe } from '../../images/build/recipe.js';

export const pullSchema = z
  .object({
    ref: z.string().min(1).describe('REGISTRY/NAME[:TAG] or REGISTRY/NAME@sha256:…'),
    insecure: z.boolean().default(false).describe('allow plain http to a registry that is not on loopback'),
    username: z.string().optional(),
    password: z.string().optional(),
  })
  .strict();

export function imageRoutes(app: Hono, engine: Engine): void {
  const store = engine.images;

  app.get('/v1/images', async (c) => c.json({ images: await store.list() }));

  // Images of the store that were built from recipes (their config carries the recipe labels).
  app.get('/v1/images/built', async (c) => c.json({ images: await engine.builder.list() }));

  app.post('/v1/images/build', async (c) => {
    const parsed = buildImageSchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new RealmError('IMAGE_RECIPE_INVALID', `bad image recipe: ${zodMessage(parsed.error)}`);
    const req = parsed.data;
    // A bad name or recipe is a 4xx before the stream starts.
    const recipe = requestRecipe(req, engine.recipeDirs);
    return streamProgress(c, (onProgress, signal) =>
      engine.buildImage(req.name, recipe, { noCache: req.noCache, onProgress, signal }),
    );
  });

  app.post('/v1/images/prune', async (c) => c.json(await engine.pruneImages()));

  app.post('/v1/images/import', async (c) => {
    const body = c.req.raw.body;
    if (!body) throw new RealmError('IMAGE_INVALID', 'send the image tarball (OCI archive or docker save) as the request body');
    const name = c.req.query('name');
    const images = await engine.importImage(Readable.fromWeb(body as WebReadable<Uint8Array>), name ? { name } : {});
    return c.json({ images }, 201);
  });

  app.post('/v1/images/pull', async (c) => {
    const b = pullSchema.parse(await jsonBody(c));
    return streamSSE(c, async (stream) => {
      // A client that goes away cancels the pull; what was staged is removed.
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      let queue: Promise<void> = Promise.resolve();
      let last = 0;
      let lastKey = '';
      const send = (event: string, data: unknown): void => {
        queue = queue.then(() => stream.writeSSE({ event, data: JSON.stringify(data) })).catch(() => undefined);
      };
      const onProgress = (p: ImageProgress): void => {
        // Byte counts arrive per chunk; a few events a second per layer are plenty (always the
        // first and the last of each layer's phase).
        const now = Date.now();
        const key = p.type === 'layer' ? `${p.digest} ${p.phase}` : p.message;
        if (p.type === 'layer' && key === lastKey && p.bytes < p.total && now - last < 100) return;
        last = now;
        lastKey = key;
        send('progress', p);
      };
      try {
        const img = await engine.pullImage(b.ref, {
          signal: abort.signal,
          insecure: b.insecure,
          ...(b.username !== undefined ? { username: b.username, password: b.password ?? '' } : {}),
          onProgress,
        });
        send('done', img);
      } catch (e) {
        send('error', {
          error: e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: errorMessage(e) },
        });
      }
      await queue;
    });
  });

  app.get('/v1/images/:ref/export', async (c) => {
    const ref = c.req.param('ref');
    const tar = await engine.exportImage(ref);
    const file = ref.replace(/[^A-Za-z0-9._-]+/g, '_');
    return c.body(Readable.toWeb(tar) as ReadableStream, 200, {
      'content-type': 'application/x-tar',
      'content-disposition': `attachment; filename="${file}.tar"`,
    });
  });

  app.get('/v1/images/:ref', async (c) => c.json(await store.inspect(c.req.param('ref'))));

  app.delete('/v1/images/:ref', async (c) => c.json(await engine.removeImage(c.req.param('ref'))));
}
