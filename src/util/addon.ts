/**
 * The daemon's N-API addon (native/peercred, built by scripts/build.sh): SO_PEERCRED, dialling
 * into a sandbox's network namespace, the gateway fast lane's relay thread. Loaded once, on first
 * use; `purpose` says in the error what a missing addon stops.
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { NATIVE_DIR } from './paths.js';

let addon: unknown;

export function loadAddon<T>(purpose: string): T {
  if (addon) return addon as T;
  const path = join(NATIVE_DIR, 'peercred.node');
  try {
    addon = createRequire(import.meta.url)(path) as unknown;
  } catch (e) {
    throw new Error(`cannot load ${path}, which ${purpose} (${(e as Error).message}); build it with scripts/build.sh`);
  }
  return addon as T;
}

/** A socket's libuv stream handle: its descriptor, and reading turned off and on under Node's stream. */
export interface StreamHandle {
  fd?: number;
  reading?: boolean;
  readStop(): number;
  readStart(): number;
}

export function streamHandle(socket: object): StreamHandle | undefined {
  return (socket as { _handle?: StreamHandle | null })._handle ?? undefined;
}
