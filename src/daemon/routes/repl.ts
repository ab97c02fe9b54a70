/**
 * REPL API compatibility: `GET /api/repl/languages`, `POST /api/repl/execute` `{language, code}`
 * → `{result, success}`, and `POST /api/repl/execute/stream` (SSE: output as `data:` messages,
 * then `event: done`).
 */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import { runSchema } from '../../engine/schemas.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { jsonBody, requestSignal } from '../body.js';

const replSchema = z.object({ language: z.string().min(1).max(64), code: z.string().max(16 * 1024 ** 2) }).strict();

export function replRoutes(app: Hono, engine: Engine): void {
  app.get('/api/repl/languages', (c) => c.json(engine.languages.names()));

  app.post('/api/repl/execute', async (c) => {
    const req = replSchema.parse(await jsonBody(c));
    let result = '';
    const r = await engine.run(runSchema.parse(req), (_s, chunk) => void (result += chunk.toString('utf8')), requestSignal(c));
    if (r.compile && r.verdict === 'compile-error') result = r.compile.stdout + r.compile.stderr;
    if (r.verdict !== 'ok' && r.verdict !== 'runtime-error' && r.verdict !== 'compile-error') result += `\n[${r.verdict}]`;
    return c.json({ result, success: r.verdict === 'ok' });
  });

  app.post('/api/repl/execute/stream', async (c) => {
    const opts = runSchema.parse(replSchema.parse(await jsonBody(c)));
    engine.language(opts.language);
    return streamSSE(c, async (stream) => {
      const abort = new AbortController();
      stream.onAbort(() => abort.abort());
      const decoder = new StringDecoder('utf8');
      let queue: Promise<void> = Promise.resolve();
      const send = (msg: { event?: string; data: string }): void => {
        queue = queue.then(() => stream.writeSSE(msg)).catch(() => abort.abort());
      };
      try {
        const r = await engine.run(opts, (_s, chunk) => {
          const text = decoder.write(chunk);
          if (text) send({ data: text });
        }, abort.signal);
        const rest = decoder.end();
        if (rest) send({ data: rest });
        if (r.compile && r.verdict === 'compile-error') send({ data: r.compile.stdout + r.compile.stderr });
        send({ event: 'done', data: JSON.stringify({ success: r.verdict === 'ok', verdict: r.verdict, exitCode: r.exitCode }) });
      } catch (e) {
        send({ event: 'error', data: JSON.stringify({ error: { code: e instanceof RealmError ? e.code : 'INTERNAL', message: errorMessage(e) } }) });
        send({ event: 'done', data: JSON.stringify({ success: false }) });
      }
      await queue;
    });
  });
}
