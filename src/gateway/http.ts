/** The gateway's own answers and the request body every app kind takes whole. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_STATUS, type ErrorCode } from '../util/errors.js';

/** How a request to an app went, for the app's figures (Apps.noteRequest). */
export interface Outcome {
  ok: boolean;
  /** What the request's instance grew to, when its runner said. */
  memoryBytes?: number | undefined;
}

/** The largest request body passed to an app. */
export const MAX_REQUEST_BODY = 16 * 1024 ** 2;

/** A JSON error; once the head went out the status cannot change, so the response is cut short instead. */
export function sendError(res: ServerResponse, code: ErrorCode, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(ERROR_STATUS[code], { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** The request's body, or null once it passes MAX_REQUEST_BODY (the rest is not read). */
export function readBody(req: IncomingMessage): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST_BODY) {
        resolve(null);
        req.pause();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
