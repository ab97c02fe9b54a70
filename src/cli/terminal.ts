/** Connect this terminal to a command in a sandbox: raw keys in, output out, resizes followed. */
import type { Interactive } from '@realm/sdk';
import { exitCodeOf } from './action.js';

export const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi'];

const CTRL_P = 0x10;
const CTRL_Q = 0x11;

export interface TerminalSize {
  tty: boolean;
  rows: number;
  cols: number;
}

/**
 * Run a session interactively (a pseudo-terminal when we have one) and set the exit code from it.
 * With `detachable`, Ctrl-P Ctrl-Q leaves the session running and returns (true).
 */
export async function attachTerminal(open: (size: TerminalSize) => Promise<Interactive>, detachable = false): Promise<boolean> {
  const tty = process.stdin.isTTY && process.stdout.isTTY;
  const term = await open({ tty, rows: process.stdout.rows || 24, cols: process.stdout.columns || 80 });
  term.onData((stream, data) => (stream === 'stderr' ? process.stderr : process.stdout).write(data));
  let held = false;
  let detached = false;
  const onInput = (d: Buffer): void => {
    let out = Buffer.from(d);
    if (detachable) {
      const bytes: number[] = [];
      for (const b of d) {
        if (held) {
          held = false;
          if (b === CTRL_Q) {
            detached = true;
            term.close();
            return;
          }
          bytes.push(CTRL_P);
        }
        if (b === CTRL_P) held = true;
        else bytes.push(b);
      }
      out = Buffer.from(bytes);
    }
    if (out.length) term.write(out.toString('utf8'));
  };
  if (tty) process.stdin.setRawMode(true);
  process.stdin.on('data', onInput);
  // Explicitly paused streams (a picker before us) stay paused when a listener is added.
  process.stdin.resume();
  process.stdin.on('end', () => term.eof());
  const onResize = (): void => term.resize(process.stdout.rows, process.stdout.columns);
  process.stdout.on('resize', onResize);
  try {
    const exit = await term.exited;
    process.exitCode = exitCodeOf({ ...exit, verdict: exit.exitCode === 0 ? 'ok' : 'runtime-error' });
    return false;
  } catch (e) {
    if (detached) return true;
    throw e;
  } finally {
    if (tty) process.stdin.setRawMode(false);
    process.stdin.off('data', onInput);
    process.stdin.pause();
    process.stdout.off('resize', onResize);
  }
}
