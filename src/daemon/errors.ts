/** Every failure becomes `{ error: { code, message } }` with the code's HTTP status. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ZodError } from 'zod';
import { RealmError } from '../util/errors.js';
import { BodyTooLarge } from './body.js';
import { log } from '../logs/log.js';

export function errorBody(code: string, message: string, details?: unknown) {
  return { error: { code, message, ...(details !== undefined ? { details } : {}) } };
}

/** Turn zod issues into one message that says which field to change and how. */
export function zodMessage(e: ZodError): string {
  return e.issues
    .slice(0, 5)
    .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
    .join('; ');
}

export function handleError(err: Error, c: Context): Response {
  if (err instanceof RealmError) {
    // Over a limit is temporary: say when to try again (the error may know better than 1 s).
    if (err.code === 'CAPACITY_EXCEEDED') {
      const after = err.details?.retryAfter;
      c.header('Retry-After', typeof after === 'number' && after > 0 ? String(Math.ceil(after)) : '1');
    }
    return c.json(errorBody(err.code, err.message, err.details), err.status as ContentfulStatusCode);
  }
  if (err instanceof BodyTooLarge) return c.json(errorBody('INVALID_REQUEST', err.message), 413);
  if (err instanceof ZodError) return c.json(errorBody('INVALID_REQUEST', zodMessage(err)), 400);
  if (err instanceof SyntaxError)
    return c.json(errorBody('INVALID_REQUEST', `the request body is not valid JSON: ${err.message}`), 400);
  log.error(`internal error on ${c.req.method} ${c.req.path}: ${err.message}`, { err });
  return c.json(errorBody('INTERNAL', 'internal error; the daemon log has details'), 500);
}
