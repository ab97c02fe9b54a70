/** Printing for the CLI: tables for people, JSON for scripts. */
import { createRequire } from 'node:module';
import type { ExecEvent, ExecResult } from '@realm/sdk';

export function printJson(data: unknown): void {
  process.stdout.write(`${JSON.stringify(data, null, 2)}\n`);
}

export function printTable(head: string[], rows: (string | number)[][]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  // cli-table3 loads when a table is printed, not with every command.
  const Table = createRequire(import.meta.url)('cli-table3') as typeof import('cli-table3');
  const t = new Table({
    head,
    style: { head: [], border: [] },
    chars: {
      top: '',
      'top-mid': '',
      'top-left': '',
      'top-right': '',
      bottom: '',
      'bottom-mid': '',
      'bottom-left': '',
      'bottom-right': '',
      left: '',
      'left-mid': '',
      mid: '',
      'mid-mid': '',
      right: '',
      'right-mid': '',
      middle: '  ',
    },
  });
  t.push(...rows.map((r) => r.map(String)));
  process.stdout.write(
    `${t
      .toString()
      .split('\n')
      .map((l) => l.trimEnd())
      .join('\n')}\n`,
  );
}

/** `2026-11-23T12:00:00.000Z` → `5m ago`. */
export function ago(iso: string | null): string {
  if (!iso) return '-';
  const s = Math.round((Date.now() - Date.parse(iso)) / 1000);
  const abs = Math.abs(s);
  const txt =
    abs < 60
      ? `${abs}s`
      : abs < 3600
        ? `${Math.round(abs / 60)}m`
        : abs < 86400
          ? `${Math.round(abs / 3600)}h`
          : `${Math.round(abs / 86400)}d`;
  return s >= 0 ? `${txt} ago` : `in ${txt}`;
}

/**
 * Print a streamed exec or run as it comes; a compile step's output (in the result) and any
 * verdict but ok/runtime-error go to stderr at the end.
 */
export async function printStream(events: AsyncIterable<ExecEvent>): Promise<ExecResult & { compile?: ExecResult }> {
  for await (const ev of events) {
    if (ev.type === 'stdout') process.stdout.write(ev.data);
    else if (ev.type === 'stderr') process.stderr.write(ev.data);
    else {
      const r = ev.result as ExecResult & { compile?: ExecResult };
      if (r.verdict === 'compile-error') {
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
      }
      // A limit hit by the compile step (the program never ran) says so.
      const compiling = r.compile && r.compile.verdict !== 'ok' && r.verdict !== 'compile-error' ? ' while compiling' : '';
      if (r.verdict !== 'ok' && r.verdict !== 'runtime-error') process.stderr.write(`realm: ${r.verdict}${compiling}\n`);
      return r;
    }
  }
  throw new Error('the stream ended without a result');
}
