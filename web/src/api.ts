/**
 * The dashboard's one way to the daemon: its public HTTP API under /v1, same origin.
 *
 * Authentication is the session cookie (HttpOnly, set by POST /v1/ui/session from a token) and
 * the `X-Realm-UI: 1` header on every request: the daemon accepts the cookie only with that
 * header, which a page of another site cannot add to a request without a CORS preflight it would
 * fail. So everything here goes through `request`, which adds it. A 401 anywhere means the session
 * is gone: `session` turns to 'out' and the app shows the login form.
 *
 * The SDK (@realm/sdk) is for Node (undici, node:http); its types are shared from here.
 */
import { signal } from '@preact/signals';

export const UI_HEADER = 'X-Realm-UI';

export type SessionState = 'unknown' | 'in' | 'out';
/** Whether the browser holds a working session; pages render only when 'in'. */
export const session = signal<SessionState>('unknown');
/** Who the session acts as (GET /v1/ui/session). */
export const me = signal<{ principal: string; admin: boolean; expiresAt: string } | null>(null);

/** An error answer of the API: `{ error: { code, message } }`. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export type Query = Record<string, string | number | boolean | undefined | (string | number)[]>;

export interface RequestOptions {
  query?: Query;
  /** Sent as JSON (Content-Type: application/json). */
  json?: unknown;
  /** Sent as is, e.g. a File for an upload (give its type in `type`). */
  body?: BodyInit;
  type?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** `/v1/sandboxes` with a query string; lists repeat a key. */
export function apiUrl(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v === undefined || v === '') continue;
    for (const one of Array.isArray(v) ? v : [v]) q.append(k, String(one));
  }
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

/** The WebSocket URL of an API path on this origin (the cookie goes along; see the daemon's ui-session.ts). */
export function wsUrl(path: string, query?: Query): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${apiUrl(path, query)}`;
}

async function errorOf(res: Response): Promise<ApiError> {
  let code = `HTTP_${res.status}`;
  let message = res.statusText || `the daemon answered ${res.status}`;
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch {
    // not JSON: keep the status line
  }
  return new ApiError(res.status, code, message);
}

/** One API request; resolves to the Response of a 2xx, throws ApiError otherwise. */
export async function request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { [UI_HEADER]: '1', ...opts.headers };
  let body = opts.body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (body !== undefined) headers['Content-Type'] = opts.type ?? 'application/octet-stream';
  const init: RequestInit = { method, headers, credentials: 'same-origin' };
  if (body !== undefined) init.body = body;
  if (opts.signal) init.signal = opts.signal;
  const res = await fetch(apiUrl(path, opts.query), init);
  if (res.ok) return res;
  const err = await errorOf(res);
  if (res.status === 401 && path !== '/v1/ui/session') {
    session.value = 'out';
    me.value = null;
  }
  throw err;
}

/** A JSON request; a 204 resolves to undefined. */
export async function api<T>(method: string, path: string, opts?: RequestOptions): Promise<T> {
  const res = await request(method, path, opts);
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> =>
  api<T>('GET', path, signal ? { query, signal } : { query });
export const post = <T>(path: string, json?: unknown): Promise<T> => api<T>('POST', path, { json: json ?? {} });
export const patch = <T>(path: string, json: unknown): Promise<T> => api<T>('PATCH', path, { json });
export const del = <T = void>(path: string, query?: Query): Promise<T> => api<T>('DELETE', path, { query });

/** Path segment, escaped: `seg(id)` in `/v1/sandboxes/${seg(id)}`. */
export const seg = (s: string): string => encodeURIComponent(s);

/** The message to show for any error a call threw. */
export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

/** Ask the daemon whether the cookie still holds; sets `session` and `me`. */
export async function checkSession(): Promise<void> {
  try {
    me.value = await get<{ principal: string; admin: boolean; expiresAt: string }>('/v1/ui/session');
    session.value = 'in';
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      session.value = 'out';
      me.value = null;
    } else throw e;
  }
}

/** Exchange a token for the session cookie. */
export async function login(token: string): Promise<void> {
  me.value = await post<{ principal: string; admin: boolean; expiresAt: string }>('/v1/ui/session', { token });
  session.value = 'in';
}

/** End the session (the daemon forgets it and clears the cookie). */
export async function logout(): Promise<void> {
  try {
    await del('/v1/ui/session');
  } finally {
    session.value = 'out';
    me.value = null;
  }
}

/** Save a download the API answers (files, logs, artifacts) under `name`. */
export async function download(path: string, name: string, query?: Query): Promise<void> {
  const res = await request('GET', path, query ? { query } : {});
  saveBlob(await res.blob(), name);
}

/** Offer `blob` to the user as a file named `name` (the browser's download). */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  try {
    const a = document.createElement('a');
    a.href = url;
    a.download = name;
    a.click();
  } finally {
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  }
}
