/** `realm image build`: an image from Debian packages, with progress; and the list of built images. */
import type { Command } from 'commander';
import { type ImageBuildOptions, type ImageBuildProgress, images } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';

interface BuildFlags {
  from?: string;
  packages?: string;
  mirror?: string;
  cache: boolean;
  json?: boolean;
}

const BAR = 30;

/** Progress on a terminal: one line redrawn with a bar; elsewhere (logs, CI) one plain line per phase. */
function progressPrinter(tty: boolean): { onProgress: (p: ImageBuildProgress) => void; end: () => void } {
  let last = '';
  let drawn = false;
  return {
    onProgress: (p) => {
      if (tty) {
        const filled = Math.round((p.percent / 100) * BAR);
        const line = `[${'#'.repeat(filled)}${'.'.repeat(BAR - filled)}] ${String(p.percent).padStart(3)}% ${p.message}`;
        const width = process.stderr.columns || 100;
        process.stderr.write(`\r\x1b[2K${line.slice(0, width - 1)}`);
        drawn = true;
      } else if (p.message !== last) {
        process.stderr.write(`${p.phase}: ${p.message}\n`);
      }
      last = p.message;
    },
    end: () => {
      if (drawn) process.stderr.write('\n');
      drawn = false;
    },
  };
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
}

/** Add `build` to the `realm image` command. */
export function registerBuild(image: Command): void {
  image
    .command('build')
    .description(
      'build image NAME from Debian packages (cached by recipe); with no --from, the recipe file NAME.toml (e.g. `realm image build langs`)',
    )
    .argument('<name>', 'image name')
    .option('--from <distro:suite>', 'base, e.g. debian:bookworm')
    .option('--packages <list>', 'comma-separated Debian packages, e.g. python3,ruby')
    .option('--mirror <url>', "Debian mirror (default: the one the daemon host's apt uses)")
    .option('--no-cache', 'build even when the cache holds this recipe')
    .option('--json', 'print the result as JSON (progress still goes to stderr)')
    .action(
      action(async (name: string, f: BuildFlags) => {
        const opts: ImageBuildOptions = {
          name,
          ...(f.from ? { from: f.from } : {}),
          ...(f.packages !== undefined
            ? {
                packages: f.packages
                  .split(',')
                  .map((p) => p.trim())
                  .filter(Boolean),
              }
            : {}),
          ...(f.mirror ? { mirror: f.mirror } : {}),
          ...(f.cache ? {} : { noCache: true }),
        };
        const printer = progressPrinter(!!process.stderr.isTTY && !f.json);
        const ctrl = new AbortController();
        // Ctrl-C cancels the build on the daemon (the stream closes) and leaves nothing behind.
        const onSigint = (): void => ctrl.abort();
        process.once('SIGINT', onSigint);
        try {
          const r = await images.build(opts, { onProgress: printer.onProgress, signal: ctrl.signal }, await client());
          printer.end();
          if (f.json) printJson(r);
          else
            process.stdout.write(
              `${r.name}: ${r.cache === 'built' ? 'built' : 'cache hit'} (${mib(r.bytes)}, ${(r.ms / 1000).toFixed(1)}s, recipe ${r.hash.slice(0, 12)})\n`,
            );
        } finally {
          printer.end();
          process.off('SIGINT', onSigint);
        }
      }),
    );
}
