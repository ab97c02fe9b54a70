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
  // The build's bundle of program.ts with its commands, the SDK and commander: one CommonJS file,
  // required (scripts/build.sh says why); the modules themselves where the build has not made it,
  // or made it before tsc's last output (a bare `tsc -b` since would leave it running old code).
  // node:module is imported here, not above: `--version` would pay for its ES module face.
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const { statSync } = require('node:fs') as typeof import('node:fs');
  const mtime = (path: string): number => statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const compiled = Math.max(mtime('../../tsconfig.tsbuildinfo'), mtime('../../../packages/sdk/tsconfig.tsbuildinfo'), 1);
  const program = (
    mtime('./program.bundle.cjs') >= compiled ? require('./program.bundle.cjs') : await import('./program.js')
  ) as typeof import('./program.js');
  await program.main(process.argv);
}
