/** Connect this terminal to a command in a sandbox: raw keys in, output out, resizes followed. */
import type { Sandbox } from '@realm/sdk';
import { exitCodeOf } from './action.js';

export const DEFAULT_SHELL = ['/bin/sh', '-c', 'if command -v bash >/dev/null; then exec bash -l; else exec sh -l; fi'];

/** Run `argv` interactively (a pseudo-terminal when we have one) and set the exit code from it. */
export async function attachTerminal(sb: Sandbox, argv: string[], cwd?: string): Promise<void> {
  const tty = process.stdin.isTTY && process.stdout.isTTY;
  const term = await sb.attach(argv, { tty, rows: process.stdout.rows || 24, cols: process.stdout.columns || 80, ...(cwd ? { cwd } : {}) });
  term.onData((stream, data) => (stream === 'stderr' ? process.stderr : process.stdout).write(data));
  if (tty) process.stdin.setRawMode(true);
  process.stdin.on('data', (d: Buffer) => term.write(d.toString('utf8')));
  process.stdin.on('end', () => term.eof());
  const onResize = (): void => term.resize(process.stdout.rows, process.stdout.columns);
  process.stdout.on('resize', onResize);
  try {
    const exit = await term.exited;
    process.exitCode = exitCodeOf({ ...exit, verdict: exit.exitCode === 0 ? 'ok' : 'runtime-error' });
  } finally {
    if (tty) process.stdin.setRawMode(false);
    process.stdin.pause();
    process.stdout.off('resize', onResize);
  }
}
