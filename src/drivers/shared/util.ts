/** Small helpers every driver uses: signal names, log tails, waiting for a file, reading a stream. */
import { existsSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Readable } from 'node:stream';

/** `SIGKILL` for 9; `SIG<n>` for a number Node has no name for. */
export function signalName(n: number): string {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;
}

/** All of a stream's text, read to its end (started: the fork server hands its sockets out paused). */
export function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (d: Buffer) => (text += d.toString()));
    stream.resume();
    stream.once('end', () => resolve(text));
    stream.once('error', reject);
  });
}

/** The last lines of a helper's log (at most 2000 characters), to quote in an error. */
export function readLog(path: string, lines = 5): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join(' ').slice(0, 2000) || '(no output)';
  } catch {
    return '(no log)';
  }
}

/** Wait until `file` exists, while `alive()`, for at most `ms`; else fail with `message`. */
export async function waitForFile(file: string, alive: () => boolean, ms: number, message: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!existsSync(file)) {
    if (!alive() || Date.now() > deadline) throw new Error(message);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The pid in `file` once something wrote it (undefined if `ended()` first, or after 5 s). */
export async function readPid(file: string, ended: () => boolean): Promise<number | undefined> {
  for (let i = 0; i < 500 && !ended(); i++) {
    try {
      const n = Number(readFileSync(file, 'utf8').trim());
      if (n > 0) return n;
    } catch {
      /* not written yet */
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

/** `s` with every regular-expression metacharacter escaped. */
export function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
