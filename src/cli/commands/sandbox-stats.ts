/**
 * `realm sandbox stats ID [-f] [--json]`: a sandbox's live figures as a table; with -f a table
 * redrawn in place on a terminal, one line per sample when stdout is not one (a pipe, a file).
 */
import type { Command } from 'commander';
import { Sandbox, type SandboxStats } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson, printTable } from '../output.js';
import { formatSize } from '../../util/units.js';

const HEAD = ['ID', 'CPU %', 'CPU TIME', 'MEMORY', 'PEAK', 'PIDS', 'DISK', 'NET IN', 'NET OUT'];

const size = (n: number | null | undefined): string => (n === null || n === undefined ? '-' : formatSize(n));

function row(s: SandboxStats): string[] {
  return [
    s.id,
    s.cpu.percent === null ? '-' : s.cpu.percent.toFixed(1),
    `${s.cpu.seconds.toFixed(2)}s`,
    `${size(s.memory.bytes)} / ${size(s.memory.limitBytes)}`,
    size(s.memory.peakBytes),
    `${s.pids.current} / ${s.pids.limit}`,
    size(s.disk.usedBytes),
    size(s.network?.rxBytes),
    size(s.network?.txBytes),
  ];
}

export function statsCommand(sb: Command): void {
  sb.command('stats')
    .description('live figures of a running sandbox: cpu, memory (now, peak), pids, disk, network')
    .argument('<id>', 'sandbox id or name')
    .option('-f, --follow', 'keep reading (a refreshing table on a terminal, a line per sample otherwise)')
    .option('--interval <duration>', 'with -f: how often (250ms to 1h)', '1s')
    .option('--json', 'print JSON (with -f: one object per line)')
    .action(
      action(async (id: string, f: { follow?: boolean; interval: string; json?: boolean }) => {
        const sb = await Sandbox.get(id, await client());
        if (!f.follow) {
          const s = await sb.stats();
          if (f.json) printJson(s);
          else printTable(HEAD, [row(s)]);
          return;
        }
        const abort = new AbortController();
        const stop = (): void => abort.abort();
        process.once('SIGINT', stop);
        const tty = process.stdout.isTTY && !f.json;
        let first = true;
        try {
          for await (const s of sb.statsStream({ interval: f.interval, signal: abort.signal })) {
            if (f.json) process.stdout.write(`${JSON.stringify(s)}\n`);
            else if (tty) {
              process.stdout.write('\x1b[H\x1b[2J'); // home and clear: the table is redrawn in place
              printTable(HEAD, [row(s)]);
            } else {
              if (first) process.stdout.write(`${['TIME', ...HEAD].join('\t')}\n`);
              process.stdout.write(`${[s.time, ...row(s)].join('\t')}\n`);
            }
            first = false;
          }
        } catch (e) {
          if (!abort.signal.aborted) throw e;
        } finally {
          process.off('SIGINT', stop);
        }
      }),
    );
}
