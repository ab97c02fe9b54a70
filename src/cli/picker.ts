/**
 * A full-screen list to pick from in a terminal: ↑/↓ (or k/j) move, enter chooses, d deletes
 * (after a y/n question), q or Esc leaves. Drawn on the alternate screen so the user's
 * scrollback is left as it was.
 */
import { emitKeypressEvents } from 'node:readline';

export type PickResult = { action: 'open'; index: number } | { action: 'delete'; index: number } | null;

export interface PickerOptions {
  title: string;
  head: string[];
  rows: string[][];
  /** The name a row is asked about ("delete NAME?"). */
  label: (index: number) => string;
}

interface Key {
  name?: string;
  ctrl?: boolean;
  sequence?: string;
}

const ESC = '\x1b[';

function layout(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)];
}

/** Let the user pick a row; null when they leave without one. Needs a TTY on stdin and stdout. */
export function pick(opts: PickerOptions): Promise<PickResult> {
  const { stdin, stdout } = process;
  let selected = 0;
  let asking = false;
  const lines = layout(opts.head, opts.rows);
  const draw = (): void => {
    const cols = stdout.columns || 80;
    const out = [`${ESC}H${ESC}2J`, `${opts.title}\r\n\r\n`, `  ${lines[0]?.slice(0, cols - 2) ?? ''}\r\n`];
    lines.slice(1).forEach((l, i) => {
      const text = `${i === selected ? '>' : ' '} ${l}`.slice(0, cols);
      out.push(i === selected ? `${ESC}7m${text}${ESC}0m\r\n` : `${text}\r\n`);
    });
    out.push(
      '\r\n',
      asking ? `delete ${opts.label(selected)}? its clone goes too (y/N) ` : 'enter: resume   d: delete   q: quit',
    );
    stdout.write(out.join(''));
  };
  return new Promise((resolve) => {
    emitKeypressEvents(stdin);
    stdin.setRawMode(true);
    stdin.resume();
    stdout.write(`${ESC}?1049h${ESC}?25l`);
    const done = (r: PickResult): void => {
      stdin.off('keypress', onKey);
      stdout.off('resize', draw);
      stdin.setRawMode(false);
      stdin.pause();
      stdout.write(`${ESC}?25h${ESC}?1049l`);
      resolve(r);
    };
    const onKey = (_s: string | undefined, key: Key | undefined): void => {
      const k = key?.name ?? key?.sequence ?? '';
      if (asking) {
        asking = false;
        if (k === 'y') return done({ action: 'delete', index: selected });
      } else if (k === 'q' || k === 'escape' || (key?.ctrl && (k === 'c' || k === 'd'))) return done(null);
      else if (k === 'return' || k === 'enter') return done({ action: 'open', index: selected });
      else if (k === 'd') asking = true;
      else if (k === 'up' || k === 'k') selected = Math.max(0, selected - 1);
      else if (k === 'down' || k === 'j') selected = Math.min(opts.rows.length - 1, selected + 1);
      draw();
    };
    stdin.on('keypress', onKey);
    stdout.on('resize', draw);
    draw();
  });
}
