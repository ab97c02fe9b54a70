/**
 * What a log line made while serving an API request knows of it: its request id, and ids the
 * request resolved on the way (the sandbox it names). Kept in an AsyncLocalStorage so that code
 * far from HTTP (the engine, the drivers) needs no parameter for it.
 *
 *   requestContext.run({ requestId: 'r-1', done: false }, () => handle());
 */
import { AsyncLocalStorage } from 'node:async_hooks';

export interface RequestContext {
  requestId: string;
  /** The sandbox the request names, once access checks pinned it. */
  sandboxId?: string;
  /**
   * The response went out. Work the request started may outlive it (a proxy, a timer) and still
   * runs in its async context: its lines must not claim to be part of the request.
   */
  done: boolean;
}

export const requestContext = new AsyncLocalStorage<RequestContext>();

/** The fields of the request being served (none outside a request, or after its response). */
export function requestFields(): { requestId?: string; sandboxId?: string } {
  const c = requestContext.getStore();
  if (!c || c.done) return {};
  return c.sandboxId ? { requestId: c.requestId, sandboxId: c.sandboxId } : { requestId: c.requestId };
}
