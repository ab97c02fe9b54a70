/**
 * What the caller is told when the node a request was placed on fails it: refused before anything
 * ran there (try again), or stopped answering after it began (it may have died mid-run: the result
 * is lost). A streamed answer that breaks off ends with an `error` event saying so, as any error
 * after a stream began does, instead of just stopping.
 */
import type { NodeView } from '../cluster/types.js';
import { RealmError, errorMessage } from '../util/errors.js';

/** The failure of a request placed on `target`, in words for the caller. */
export function placedFailure(target: NodeView, e: unknown): unknown {
  if (!(e instanceof RealmError) || e.code !== 'NODE_UNREACHABLE') return e;
  const before = /ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|certificate|TLS/.test(e.message);
  return new RealmError(
    'NODE_UNREACHABLE',
    before
      ? `this was placed on node ${target.id}, which could not be reached (${e.message}); nothing ran there: send it again (realm node ls shows the node's state)`
      : `this was placed on node ${target.id}, which stopped answering before it finished (it may have died mid-run): its result is lost; run it again (realm node ls shows the node's state)`,
  );
}

/** A streamed (SSE) answer from `target`, ended by an `error` event if it breaks off. */
export function endedIfCut(res: Response, target: NodeView): Response {
  if (!res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) return res;
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body.getReader();
  const body = new ReadableStream<Uint8Array>({
    async pull(ctl) {
      try {
        const { done, value } = await reader.read();
        if (done) ctl.close();
        else ctl.enqueue(value);
      } catch (e) {
        const err = placedFailure(target, new RealmError('NODE_UNREACHABLE', errorMessage(e)));
        const error = { code: 'NODE_UNREACHABLE', message: (err as Error).message };
        ctl.enqueue(new TextEncoder().encode(`\nevent: error\ndata: ${JSON.stringify({ error })}\n\n`));
        ctl.close();
      }
    },
    cancel: (why) => reader.cancel(why),
  });
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
}
