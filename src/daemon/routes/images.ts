import type { Hono } from 'hono';
import type { Engine } from '../../engine/engine.js';
import { buildImageSchema, requestRecipe } from '../../images/build/recipe.js';
import { jsonBody } from '../body.js';
import { zodMessage } from '../errors.js';
import { RealmError } from '../../util/errors.js';
import { streamProgress } from '../sse.js';

export function imageRoutes(app: Hono, engine: Engine): void {
  app.get('/v1/images', (c) => c.json({ images: engine.images.list() }));

  app.post('/v1/images/build', async (c) => {
    const parsed = buildImageSchema.safeParse(await jsonBody(c));
    if (!parsed.success) throw new RealmError('IMAGE_RECIPE_INVALID', `bad image recipe: ${zodMessage(parsed.error)}`);
    const req = parsed.data;
    // A bad name or recipe is a 4xx before the stream starts.
    const recipe = requestRecipe(req, engine.recipeDirs);
    return streamProgress(c, (onProgress, signal) => engine.buildImage(req.name, recipe, { noCache: req.noCache, onProgress, signal }));
  });
}
