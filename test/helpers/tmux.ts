/** A terminal a test types into like a person: a detached tmux session, its screen, and waits on it. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const TMUX = ['/usr/bin/tmux', '/bin/tmux'].find((p) => existsSync(p));

export interface Terminal {
  /** Type keys (tmux key names such as 'Enter', 'C-p' are understood). */
  keys(...keys: string[]): void;
  /** What the screen shows now (with `history` lines of scrollback). */
  screen(): string;
  /** Wait until the screen matches `re`; fail saying what never came. */
  until(re: RegExp, what: string): Promise<void>;
  close(): void;
}

/** Start `command` in a new tmux session of this size. */
export function terminal(name: string, command: string, size = { cols: 120, rows: 40 }, history = 100): Terminal {
  const tmux = (...args: string[]): string => execFileSync(TMUX ?? 'tmux', args, { encoding: 'utf8' });
  const session = `${name}-${process.pid}`;
  tmux('new-session', '-d', '-s', session, '-x', String(size.cols), '-y', String(size.rows), command);
  const screen = (): string => tmux('capture-pane', '-p', '-S', String(-history), '-t', session);
  return {
    keys: (...keys) => void tmux('send-keys', '-t', session, ...keys),
    screen,
    until: async (re, what) => {
      for (let i = 0; i < 400; i++) {
        if (re.test(screen())) return;
        await new Promise((r) => setTimeout(r, 25));
      }
      assert.fail(`never saw ${what}:\n${screen()}`);
    },
    close: () => {
      try {
        tmux('kill-session', '-t', session);
      } catch {
        /* already gone */
      }
    },
  };
}
