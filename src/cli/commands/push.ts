/**
 * `realm push NAME --file app.wasm`: deploy a WASI module on this node's gateway; `push ls`, `push rm`.
 * `realm push NAME --image IMG --command CMD --port P`: start or update a process service (`realm svc`).
 */
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

interface PushFlags {
  file?: string;
  image?: string;
  command?: string;
  port?: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  tag: string[];
  env: string[];
  healthPath?: string;
  healthTcp?: boolean;
  healthInterval?: string;
  healthTimeout?: string;
  healthThreshold?: string;
  restartDelay?: string;
  restartMaxDelay?: string;
  healthyDeadline?: string;
  minHealthyTime?: string;
  stopAfterDisconnect?: string;
  fuel?: string;
  timeout: string;
  visibility: string;
  replicas?: string;
  json?: boolean;
}

function collect(v: string, all: string[]): string[] {
  return [...all, v];
}

function whole(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v)) throw new Error(`${flag} ${v}: write a whole number`);
  return Number(v);
}

/** `realm push NAME --image IMG --command CMD --port P …`: a process service (POST /v1/services). */
async function pushService(name: string, f: PushFlags): Promise<void> {
  if (f.file) throw new Error('--file makes a wasm app, --image/--command/--port a process service: give one or the other');
  if (!f.image || !f.command || !f.port)
    throw new Error(
      `a process service wants all of --image, --command and --port (e.g. --image host --command 'python3 -m http.server 8000' --port 8000)`,
    );
  if (f.healthPath !== undefined && f.healthTcp)
    throw new Error('--health-path and --health-tcp: give one (an HTTP or a TCP check)');
  if (f.visibility !== 'local' && f.visibility !== 'public')
    throw new Error(`--visibility ${f.visibility}: write local or public`);
  const env: Record<string, string> = {};
  for (const e of f.env) {
    const i = e.indexOf('=');
    if (i < 1) throw new Error(`--env ${e}: write KEY=VALUE`);
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  const port = whole('--port', f.port) ?? 0;
  const replicas = whole('--replicas', f.replicas);
  const pids = whole('--pids', f.pids);
  const threshold = whole('--health-threshold', f.healthThreshold);
  const c = await client();
  const s = await c.services.push({
    name,
    image: f.image,
    command: f.command,
    port,
    visibility: f.visibility,
    tags: f.tag,
    env,
    ...(replicas !== undefined ? { replicas } : {}),
    ...(f.memory !== undefined ? { memory: f.memory } : {}),
    ...(f.cpus !== undefined ? { cpus: f.cpus } : {}),
    ...(pids !== undefined ? { pids } : {}),
    health: {
      ...(f.healthPath !== undefined ? { path: f.healthPath } : {}),
      ...(f.healthInterval !== undefined ? { interval: f.healthInterval } : {}),
      ...(f.healthTimeout !== undefined ? { timeout: f.healthTimeout } : {}),
      ...(threshold !== undefined ? { threshold } : {}),
    },
    restart: {
      ...(f.restartDelay !== undefined ? { delay: f.restartDelay } : {}),
      ...(f.restartMaxDelay !== undefined ? { maxDelay: f.restartMaxDelay } : {}),
    },
    update: {
      ...(f.healthyDeadline !== undefined ? { healthyDeadline: f.healthyDeadline } : {}),
      ...(f.minHealthyTime !== undefined ? { minHealthyTime: f.minHealthyTime } : {}),
    },
    ...(f.stopAfterDisconnect !== undefined ? { disconnect: { stopAfter: f.stopAfterDisconnect } } : {}),
  });
  if (f.json) printJson(s);
  else
    process.stdout.write(
      `${s.name} generation ${s.generation} (${s.replicas} replicas of \`${s.command}\` on port ${s.port}, ${s.visibility})\n`,
    );
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
    .option('--image <image>', 'a process service: the image its replicas run in (host, or one of `realm image ls`)')
    .option('--command <cmd>', 'a process service: the shell command each replica runs (sh -c, in the sandbox home)')
    .option('--port <port>', 'a process service: the port the command listens on inside its sandbox')
    .option('--memory <size>', 'memory cap of each request (e.g. 64m; default 64m), or of each replica (default 512m)')
    .option('--cpus <n>', 'a process service: cpus of each replica (default 1)')
    .option('--pids <n>', 'a process service: most processes of each replica (default 256)')
    .option('--tag <tag>', 'a process service: a tag a node must have (kept for the cluster); repeat for more', collect, [])
    .option('--health-path <path>', 'a process service: an HTTP GET of this path must answer 2xx/3xx (default: a TCP connect)')
    .option('--health-tcp', 'a process service: the health check is a TCP connect to the port (the default)')
    .option('--health-interval <duration>', 'a process service: time between health checks (default 10s)')
    .option('--health-timeout <duration>', 'a process service: a health check fails past this (default 1s)')
    .option('--health-threshold <n>', 'a process service: failed checks in a row before a replica loses traffic (default 3)')
    .option(
      '--restart-delay <duration>',
      'a process service: wait before restarting a crashed replica, doubling each crash (default 30s)',
    )
    .option('--restart-max-delay <duration>', 'a process service: the most the restart wait grows to (default 1h)')
    .option(
      '--stop-after-disconnect <duration>',
      'a process service in a cluster: a node cut off from etcd stops its replicas once its lease was not known alive this long (at least the lease TTL; default: they keep running)',
    )
    .option(
      '--healthy-deadline <duration>',
      'a process service update: a new replica not healthy this long after its start rolls the update back (default 5m)',
    )
    .option(
      '--min-healthy-time <duration>',
      'a process service update: a new replica stays healthy this long before an old one goes (default 0s)',
    )
    .option('--env <KEY=VALUE>', 'a process service: an environment variable; repeat for more', collect, [])
    .option('--fuel <n>', 'Wasmtime fuel (instruction budget) of each request')
    .option('--timeout <duration>', 'deadline of each request (e.g. 100ms, 5s)', '10s')
    .option('--visibility <local|public>', 'local: loopback clients only; public: anyone who reaches the gateway', 'local')
    .option('--replicas <n>', 'a module: runners serving it, 1-16 (default 2); a process service: its replicas (default 1)')
    .option('--json', 'print JSON')
    .action(
      action(async (name: string, f: PushFlags) => {
        if (f.image !== undefined || f.command !== undefined || f.port !== undefined) return pushService(name, f);
        if (!f.file)
          throw new Error(
            `realm push ${name} wants --file app.wasm (a wasm app) or --image, --command and --port (a process service)`,
          );
        if (f.visibility !== 'local' && f.visibility !== 'public')
          throw new Error(`--visibility ${f.visibility}: write local or public`);
        if (f.fuel !== undefined && !/^\d+$/.test(f.fuel)) throw new Error(`--fuel ${f.fuel}: write a whole number`);
        const replicas = f.replicas ?? '2';
        if (!/^\d+$/.test(replicas)) throw new Error(`--replicas ${replicas}: write a whole number of runners, 1-16`);
        const app = await apps.push(
          {
            name,
            module: readFileSync(f.file),
            memory: f.memory ?? '64m',
            timeout: f.timeout,
            visibility: f.visibility,
            replicas: Number(replicas),
            ...(f.fuel !== undefined ? { fuel: Number(f.fuel) } : {}),
          },
          await client(),
        );
        if (f.json) printJson(app);
        else
          process.stdout.write(
            `${app.name} ${app.sha256.slice(0, 12)} (${limits(app)}, ${app.visibility}, ${app.replicas} replicas)\n`,
          );
      }),
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
