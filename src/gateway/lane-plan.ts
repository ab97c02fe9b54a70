/**
 * What the gateway's fast lane (fast-lane.ts) makes of a request head: the service it names and
 * the head the replica gets instead. A client on a kept-alive connection mostly sends the same head
 * again: the lane keeps the last plan, compares the next head with it byte for byte, and does this
 * work (parsing, target, the replica's head, the visibility check) only when it differs.
 */
import type { ServiceRecord } from '../services/spec.js';
import { HOP } from '../services/replica-proxy.js';
import { type RequestHead, parseRequestHead } from './http-head.js';
import type { Preview } from './preview.js';
import { type ServiceTarget, hostTarget, pathTarget } from './services.js';

export interface Plan {
  /** The request head as the client sent it. */
  bytes: Buffer;
  head: RequestHead;
  target: ServiceTarget;
  /** The request head the replica gets. */
  text: Buffer;
  /** The service record the visibility was checked against (a new record: checked again). */
  rec?: ServiceRecord;
  allowed?: boolean;
}

/**
 * The service a head names (by Host, else by path); `preview` for a preview URL's Host (a browser
 * keeps a connection per origin, so that connection goes to Node's server whole); undefined: not
 * the lane's.
 */
function targetOf(preview: Preview | undefined, head: RequestHead): ServiceTarget | 'preview' | undefined {
  const host = head.headers.get('host');
  if (preview?.match(host)) return 'preview';
  const byHost = preview && hostTarget(host, preview.domain, head.target);
  if (byHost) return byHost;
  const name = /^\/([^/?]*)/.exec(head.target)?.[1];
  return name ? pathTarget(head.target, name) : undefined;
}

function requestHead(head: RequestHead, t: ServiceTarget): string {
  let s = `${head.method} ${t.path} HTTP/1.1\r\n`;
  for (const [k, v] of head.headers) if (!HOP.has(k) && !(t.prefix && k === 'x-forwarded-prefix')) s += `${k}: ${v}\r\n`;
  if (t.prefix) s += `x-forwarded-prefix: ${t.prefix}\r\n`;
  return `${s}\r\n`;
}

/**
 * The plan for the head at the start of `buf` (its visibility not checked yet); the head alone when
 * it is a whole bodiless request that names no service; undefined when the lane cannot tell where
 * the request ends, or it is a preview URL's.
 */
export function readPlan(preview: Preview | undefined, buf: Buffer): Plan | RequestHead | undefined {
  const head = parseRequestHead(buf);
  if (typeof head !== 'object') return undefined;
  const target = targetOf(preview, head);
  if (target === 'preview') return undefined;
  if (!target) return head;
  const text = Buffer.from(requestHead(head, target), 'latin1');
  return { bytes: Buffer.from(buf.subarray(0, head.length)), head, target, text };
}
