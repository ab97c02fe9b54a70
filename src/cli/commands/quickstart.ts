import type { Command } from 'commander';
import { run } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';

export function register(program: Command): void {
  program
    .command('quickstart')
    .description('make sure the daemon runs, run a first sandboxed program, say where the API is')
    .action(
      action(async () => {
        const c = await client();
        const code = 'import os, socket\nprint("hello from a realm sandbox: uid", os.getuid(), "hostname", socket.gethostname())';
        const r = await run({ language: 'python', code }, c);
        process.stdout.write(r.stdout);
        process.stdout.write(
          `verdict ${r.verdict} in ${r.wallMs} ms (cpu ${r.cpuMs} ms, peak memory ${Math.round(r.memoryBytes / 1024)} KiB)\n`,
        );
        process.stdout.write(`\nrealm's API listens on ${c.address} — try: bin/realm run python -c 'print(6*7)'\n`);
      }),
    );
}
