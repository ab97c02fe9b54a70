/** `realm push NAME --file app.wasm`: deploy a WASI module on this node's gateway; `push ls`, `push rm`. */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type AppInfo, apps } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';
import { formatSize } from '../../util/units.js';

function limits(a: AppInfo): string {
  return [`mem ${formatSize(a.memory)}`, `timeout ${a.timeoutMs}ms`, ...(a.fuel ? [`fuel ${a.fuel}`] : [])].join(', ');
}

export function register(program: Command): void {
  const push = program
    .command('push')
    .description(
      "deploy a wasi:http component or a WASI preview 1 CGI module on this node's gateway at /NAME/…; `push ls`, `push rm NAME`",
    )
    .argument('<name>', 'the app name: [a-z0-9][a-z0-9-]{0,62}, the first segment of its URLs')
    // Not a required option: commander would ask `push ls` and `push rm` for it too.
    .option('--file <path>', 'the app (.wasm: a wasi:http/incoming-handler component, or a wasm32-wasi CGI module); required')
    .option('--memory <size>', 'memory cap of each request (e.g. 64m)', '64m')
    .option('--fuel <n>', 'Wasmtime fuel (instruction budget) of each request')
    .option('--timeout <duration>', 'deadline of each request (e.g. 100ms, 5s)', '10s')
    .option('--visibility <local|public>', 'local: loopback clients only; public: anyone who reaches the gateway', 'local')
    .option('--replicas <n>', 'runners serving it, 1-16: how many of its requests run at once', '2')
    .option('--json', 'print JSON')
    .action(
      action(
        async (
          name: string,
          f: {
            file?: string;
            memory: string;
            fuel?: string;
            timeout: string;
            visibility: string;
            replicas: string;
            json?: boolean;
          },
        ) => {
          if (!f.file) throw new Error(`realm push ${name} wants --file app.wasm: the module to serve`);
          if (f.visibility !== 'local' && f.visibility !== 'public')
            throw new Error(`--visibility ${f.visibility}: write local or public`);
          if (f.fuel !== undefined && !/^\d+$/.test(f.fuel)) throw new Error(`--fuel ${f.fuel}: write a whole number`);
          if (!/^\d+$/.test(f.replicas)) throw new Error(`--replicas ${f.replicas}: write a whole number of runners, 1-16`);
          const app = await apps.push(
            {
              name,
              module: readFileSync(f.file),
              memory: f.memory,
              timeout: f.timeout,
              visibility: f.visibility,
              replicas: Number(f.replicas),
              ...(f.fuel !== undefined ? { fuel: Number(f.fuel) } : {}),
            },
            await client(),
          );
          if (f.json) printJson(app);
          else
            process.stdout.write(
              `${app.name} ${app.sha256.slice(0, 12)} (${limits(app)}, ${app.visibility}, ${app.replicas} replicas)\n`,
            );
        },
      ),
    );
  push
    .command('ls')
    .description('list your apps on this node')
    .option('--json', 'print JSON')
    .action(
      action(async (_f: unknown, cmd: Command) => {
        // `--json` after `push ls` is taken by `push` itself (it has one too): read both.
        const { json } = cmd.optsWithGlobals<{ json?: boolean }>();
        const list = await apps.list(await client());
        if (json) printJson(list);
        else
          printTable(
            // REQUESTS, FAILED and PEAK MEM: this daemon's figures since the push (or its start).
            ['NAME', 'SHA256', 'SIZE', 'LIMITS', 'REPLICAS', 'VISIBILITY', 'CREATED', 'REQUESTS', 'FAILED', 'PEAK MEM'],
            list.map((a) => [
              a.name,
              a.sha256.slice(0, 12),
              formatSize(a.size),
              limits(a),
              String(a.replicas),
              a.visibility,
              ago(a.createdAt),
              String(a.stats.requests),
              String(a.stats.failed),
              a.stats.memoryPeakBytes === null ? '-' : formatSize(a.stats.memoryPeakBytes),
            ]),
          );
      }),
    );
  push
    .command('rm')
    .description('remove apps from the gateway')
    .argument('<names...>', 'app names')
    .action(
      action(async (names: string[]) => {
        const c = await client();
        for (const n of names) {
          await apps.remove(n, c);
          process.stdout.write(`${n}\n`);
        }
      }),
    );
}
