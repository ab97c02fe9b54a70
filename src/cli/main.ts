#!/usr/bin/env node
/**
 * realm's command line: a thin layer over the SDK (and `serve`, which runs the daemon).
 *
 * Kept small because users pay for it on every command: `realm --version` loads nothing else,
 * and a command loads its own module only (program.ts), not the daemon or the other commands.
 */

// A reader that goes away (`realm … | head -1`) ends the command quietly, as SIGPIPE ends any
// Unix filter: no stack trace, status 141 (128 + SIGPIPE). Leaving also ends what it streamed.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    throw e;
  });
}

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === '--version' || args[0] === '-V')) {
  const { VERSION } = await import('../version.js');
  process.stdout.write(`${VERSION}\n`);
} else {
  // The build's bundle of program.ts with its commands, the SDK and commander (scripts/build.sh):
  // a handful of files to load instead of ~30. The modules themselves after a bare `tsc -b`.
  // Tried rather than looked for: node:fs here would cost `--version` ~3 ms (its ES module face).
  const bundle = new URL('./program.bundle.js', import.meta.url).href;
  const program = (await import(bundle).catch((e: Error & { code?: string; url?: string }) => {
    if (e.code === 'ERR_MODULE_NOT_FOUND' && e.url === bundle) return import('./program.js');
    throw e;
  })) as typeof import('./program.js');
  await program.main(process.argv);
}
