#!/usr/bin/env node
/** realm's command line: a thin layer over the SDK (and `serve`, which runs the daemon). */
import { Command } from 'commander';
import { VERSION } from '../version.js';
import { register as info } from './commands/info.js';
import { register as quickstart } from './commands/quickstart.js';
import { register as runCmd } from './commands/run.js';
import { register as sandbox } from './commands/sandbox.js';
import { register as serve } from './commands/serve.js';
import { register as volume } from './commands/volume.js';
import { register as token } from './commands/token.js';
import { register as mcp } from './commands/mcp.js';
import { register as ws } from './commands/ws.js';
import { register as image } from './commands/image.js';

// A reader that goes away (`realm … | head -1`) ends the command quietly, as SIGPIPE ends any
// Unix filter: no stack trace, status 141 (128 + SIGPIPE). Leaving also ends what it streamed.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(141);
    throw e;
  });
}

const program = new Command();
program.name('realm').description('run untrusted code behind real isolation').version(VERSION);
for (const r of [runCmd, sandbox, ws, image, volume, token, info, mcp, serve, quickstart]) r(program);
await program.parseAsync(process.argv);
