/**
 * Serving one request to a wasi:http/incoming-handler component: the HTTP request as the
 * component's incoming-request, its response-outparam's status, headers and streamed body as the
 * response. A component that traps, runs out of fuel, passes its deadline, answers an error-code or
 * no response gets a 5xx JSON error (once its head went out, the response is cut short instead).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AppRecord } from '../store/store.js';
import { type ErrorCode, RealmError, errorMessage } from '../util/errors.js';
import type { ComponentAnswer, ComponentHead, ComponentPool } from './http-component-pool.js';
import { type Outcome, sendError } from './http.js';
import { log } from '../logs/log.js';

/** Request headers a component does not see: they are about the connection to the gateway. */
const REQUEST_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
]);
/** Response headers the gateway sets itself (it frames the body). */
const RESPONSE_OWN = new Set(['content-length', 'connection', 'keep-alive', 'transfer-encoding', 'upgrade']);

function failure(app: string, a: ComponentAnswer): [ErrorCode, string] {
  const why = (a.message ?? '').slice(0, 1000);
  if (a.status === 'trap') {
    if (a.reason === 'deadline') return ['APP_TIMEOUT', `app ${app} did not answer within its deadline`];
    if (a.reason === 'fuel') return ['APP_FAILED', `app ${app} ran out of fuel`];
    return ['APP_FAILED', `app ${app} failed: ${why || 'a trap'}`];
  }
  return ['APP_FAILED', `app ${app} failed: ${why || 'no response'}`];
}

/** The component's response head as Node takes it (its framing headers left to Node). */
function headOf(h: ComponentHead): [number, string[]] {
  if (!Number.isInteger(h.status) || h.status < 100 || h.status > 999)
    throw new Error(`status ${String(h.status)} is not an HTTP status`);
  return [h.status, h.headers.filter(([n]) => !RESPONSE_OWN.has(n.toLowerCase())).flat()];
}

export async function serveComponent(
  pool: ComponentPool,
  rec: AppRecord,
  req: IncomingMessage,
  res: ServerResponse,
  body: Buffer,
  pathInfo: string,
  query: string,
): Promise<Outcome> {
  const headers: [string, string][] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i] ?? '';
    if (!REQUEST_HOP_BY_HOP.has(name.toLowerCase())) headers.push([name, req.rawHeaders[i + 1] ?? '']);
  }
  let badHead: string | undefined;
  let answer;
  try {
    answer = await pool.request(
      {
        method: req.method ?? 'GET',
        pathWithQuery: query ? `${pathInfo}?${query}` : pathInfo,
        scheme: 'http',
        authority: req.headers.host ?? '',
        headers,
        body,
      },
      {
        head: (h) => {
          if (res.headersSent || res.destroyed) return;
          try {
            const [status, flat] = headOf(h);
            res.writeHead(status, flat);
          } catch (e) {
            badHead = errorMessage(e);
          }
        },
        body: (chunk) => {
          if (badHead === undefined && res.headersSent && !res.destroyed && chunk.length) res.write(chunk);
        },
      },
    );
  } catch (e) {
    log.error(`gateway: ${rec.name}: ${errorMessage(e)}`, { service: rec.name, err: e });
    sendError(
      res,
      e instanceof RealmError ? e.code : 'INTERNAL',
      e instanceof RealmError ? e.message : `app ${rec.name} could not run`,
    );
    return { ok: false };
  }
  const { memoryBytes } = answer;
  if (badHead !== undefined) {
    log.warn(`gateway: ${rec.name}: a response head Node refuses: ${badHead}`, { service: rec.name });
    sendError(res, 'APP_FAILED', `app ${rec.name} answered a response head that is not valid HTTP: ${badHead}`);
    return { ok: false, memoryBytes };
  }
  if (answer.status === 'exit' && res.headersSent) {
    res.end();
    return { ok: true, memoryBytes };
  }
  const [code, message] = failure(rec.name, answer);
  log.warn(`gateway: ${rec.name}: ${message}`, {
    service: rec.name,
    ...(answer.log ? { output: answer.log.slice(0, 1000) } : {}),
  });
  // Once the head went out the status cannot change: the response is cut short instead.
  sendError(res, code, message);
  return { ok: false, memoryBytes };
}
