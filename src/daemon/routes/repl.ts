/**
 * REPL API compatibility: `GET /api/repl/languages`, `POST /api/repl/execute` `{language, code}`
 * → `{result, success}`, and `POST /api/repl/execute/stream` (SSE: output as `data:` messages,
 * then `event: done`).
 */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { Engine } from '../../engine/engine.js';
import { runSchema } from '../../engine/schemas.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { ByteLog } from '../../engine/output.js';
import { jsonBody, requestSignal } from '../body.js';
import { OutputEvents } from '../output-events.js';

export const replSchema = z.object({ language: z.string().min(1).max(64), code: z.string().max(16 * 1024 ** 2) }).strict();

export function replRoutes(app: Hono, engine: Engine): void {
  app.get('/api/repl/languages', (c) => c.json(engine.languages.names()));

  app.post('/api/repl/execute', async (c) => {
    const req = replSchema.parse(await jsonBody(c));
    // Output in arrival order, both streams, in few large pieces (not a string per chunk).
    const all = new ByteLog();
    const r = await engine.run(runSchema.parse(req), (_s, chunk) => void all.append(chunk), requestSignal(c));
    let result = all.bytes().toString('utf8');
    all.release();
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
      const out = new OutputEvents(
        (msg) => stream.writeSSE(msg),
        (_s, text) => ({ data: text }),
      );
      abort.signal.addEventListener('abort', () => out.close(), { once: true });
      try {
        const r = await engine.run(opts, (which, chunk) => out.output(which, chunk), abort.signal);
        if (r.compile && r.verdict === 'compile-error') out.event({ data: r.compile.stdout + r.compile.stderr });
        out.event({
          event: 'done',
          data: JSON.stringify({ success: r.verdict === 'ok', verdict: r.verdict, exitCode: r.exitCode }),
        });
      } catch (e) {
        out.event({
          event: 'error',
          data: JSON.stringify({ error: { code: e instanceof RealmError ? e.code : 'INTERNAL', message: errorMessage(e) } }),
        });
        out.event({ event: 'done', data: JSON.stringify({ success: false }) });
      }
      await out.flushed();
    });
  });
}
