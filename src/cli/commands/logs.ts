/**
 * `realm logs [-f] [--sandbox ID] [--level L] [--since T] [-n N] [--json]`: the daemon's log (the
 * admin's: root on the socket, or the admin token), one line each: time, level, message, ids.
 */
import type { Command } from 'commander';
import type { LogLine, LogsQuery } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { RealmError } from '../../util/errors.js';

type Fields = (typeof import('../../logs/text.js'))['fieldsText'];

function show(l: LogLine, json: boolean, fieldsText: Fields): string {
  if (json) return `${JSON.stringify(l)}\n`;
  return `${l.time} ${l.level.toUpperCase().padEnd(5)} ${l.msg}${fieldsText(l)}\n`;
}

export function register(program: Command): void {
  program
    .command('logs')
    .description("the daemon's log (admin only): the newest lines, or -f to follow")
    .option('-f, --follow', 'keep printing lines as they are made (Ctrl-C ends)')
    .option('--sandbox <id>', 'only lines about this sandbox')
    .option('--level <level>', 'the least level: debug, info, warn, error')
    .option('--since <time>', 'only lines from then on: a time (2026-12-05T08:00:00Z) or a duration ago (10m, 1h)')
    .option('-n, --limit <n>', 'the newest N lines (default 100; with -f, those printed first)')
    .option('--json', 'one JSON object per line, as the daemon logs them')
    .action(
      action(
        async (f: { follow?: boolean; sandbox?: string; level?: string; since?: string; limit?: string; json?: boolean }) => {
          if (f.level !== undefined && !['debug', 'info', 'warn', 'error'].includes(f.level))
            throw new RealmError('INVALID_REQUEST', `--level ${f.level}: write debug, info, warn or error`);
          if (f.limit !== undefined && !/^\d+$/.test(f.limit))
            throw new RealmError('INVALID_REQUEST', `--limit ${f.limit}: write a whole number such as 50`);
          const q: LogsQuery = {
            ...(f.level ? { level: f.level as LogLine['level'] } : {}),
            ...(f.sandbox ? { sandbox: f.sandbox } : {}),
            ...(f.since ? { since: f.since } : {}),
            ...(f.limit ? { limit: Number(f.limit) } : {}),
          };
          const c = await client();
          // realm's ES modules are reached by import() from the CLI's bundle (scripts/build.sh).
          const { fieldsText } = await import('../../logs/text.js');
          if (!f.follow) {
            for (const l of await c.logs.list(q)) process.stdout.write(show(l, f.json === true, fieldsText));
            return;
          }
          const abort = new AbortController();
          const stop = (): void => abort.abort();
          process.once('SIGINT', stop);
          try {
            for await (const l of c.logs.follow({ ...q, signal: abort.signal }))
              process.stdout.write(show(l, f.json === true, fieldsText));
          } catch (e) {
            if (!abort.signal.aborted) throw e;
          } finally {
            process.off('SIGINT', stop);
          }
        },
      ),
    );
}
