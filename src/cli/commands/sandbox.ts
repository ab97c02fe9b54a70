import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { RealmError, Sandbox, type SandboxCreateOptions, type SandboxInfo } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList, exitCodeOf, pairs, stdinOption } from '../action.js';
import { ago, printJson, printStream, printTable } from '../output.js';
import { DEFAULT_SHELL, attachTerminal } from '../terminal.js';
import { placementOf } from '../placement.js';
import { statsCommand } from './sandbox-stats.js';

interface CreateFlags {
  node?: string;
  tag: string[];
  platform?: string;
  image: string;
  driver?: string;
  memory?: string;
  cpus?: string;
  pids?: string;
  disk?: string;
  network?: string;
  volume: string[];
  allow: string[];
  deny: string[];
  inject: string[];
  ttl?: string;
  name?: string;
  label: string[];
  env: string[];
  json?: boolean;
}

function volumeSpec(v: string): { volume: string; path: string; readOnly: boolean } {
  const m = /^([^:]+):(\/[^:]*)(?::(ro|rw))?$/.exec(v);
  if (!m) throw new RealmError('INVALID_REQUEST', `--volume "${v}" must look like NAME:/path[:ro]`);
  return { volume: m[1] ?? '', path: m[2] ?? '', readOnly: m[3] === 'ro' };
}

function injectSpec(v: string): { host: string; header: string; value: string } {
  const m = /^([^=]+)=([A-Za-z0-9-]+):\s*(.*)$/.exec(v);
  if (!m) throw new RealmError('INVALID_REQUEST', `--inject "${v}" must look like HOST=Header: value`);
  return { host: m[1] ?? '', header: m[2] ?? '', value: m[3] ?? '' };
}

function row(s: SandboxInfo): (string | number)[] {
  return [
    s.id,
    s.name ?? '-',
    s.status,
    s.image,
    s.driver,
    `${Math.round(s.limits.memoryBytes / 1048576)}m`,
    s.allow.length ? `allow ${s.allow.length}` : s.network,
    ago(s.createdAt),
    s.expiresAt ? ago(s.expiresAt) : 'never',
  ];
}

export function register(program: Command): void {
  const sb = program.command('sandbox').alias('sb').description('create, list, inspect, exec in and remove sandboxes');

  sb.command('create')
    .description('create and start a sandbox')
    .option(
      '--image <image>',
      'image: host, an image of `realm image ls`, or a root filesystem directory inside one the daemon allows (realm serve --image-dir)',
      'host',
    )
    .option(
      '--driver <name>',
      'isolation: namespace (default), gvisor, microvm or wasm (`realm doctor` shows what this node offers)',
    )
    .option('--memory <size>', 'memory limit, e.g. 512m')
    .option('--cpus <n>', 'CPU quota, e.g. 1.5')
    .option('--pids <n>', 'most processes at once')
    .option('--disk <size>', 'writable layer size, e.g. 1g')
    .option('--network <mode>', 'none (default) or all')
    .option(
      '--allow <host[:port]>',
      'reach only this (repeatable; *.example.com works), through a filtering proxy',
      collectList,
      [],
    )
    .option('--deny <host[:port]>', 'never this, even if allowed (repeatable)', collectList, [])
    .option(
      '--inject <host=Header: value>',
      'a header the proxy adds to plain HTTP requests to host (repeatable)',
      collectList,
      [],
    )
    .option('--volume <name:/path[:ro]>', 'mount a named volume (repeatable)', collectList, [])
    .option('--ttl <duration>', 'destroy after this long, e.g. 1h; 0 for never')
    .option('--name <name>', 'a unique name')
    .option('--label <k=v>', 'a label (repeatable)', collectList, [])
    .option('--env <K=V>', 'environment variable (repeatable)', collectList, [])
    .option('--node <id>', 'in a cluster: create it on this node (`realm node ls`)')
    .option('--tag <tag>', 'in a cluster: only on a node with this tag (repeatable)', collectList, [])
    .option('--platform <os/arch>', 'in a cluster: only on a node of this platform, e.g. linux/amd64 (`realm node ls`)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: CreateFlags) => {
        const opts: SandboxCreateOptions = {
          image: f.image,
          volumes: f.volume.map(volumeSpec),
          allow: f.allow,
          deny: f.deny,
          inject: f.inject.map(injectSpec),
          labels: pairs(f.label, '--label'),
          env: pairs(f.env, '--env'),
          ...(f.driver ? { driver: f.driver as SandboxCreateOptions['driver'] } : {}),
          ...(f.memory ? { memory: f.memory } : {}),
          ...(f.cpus ? { cpus: f.cpus } : {}),
          ...(f.pids ? { pids: Number(f.pids) } : {}),
          ...(f.disk ? { disk: f.disk } : {}),
          ...(f.network ? { network: f.network as 'none' | 'all' } : {}),
          ...(f.ttl ? { ttl: f.ttl } : {}),
          ...(f.name ? { name: f.name } : {}),
          ...placementOf(f),
        };
        const s = await Sandbox.create(opts, await client());
        if (f.json) printJson(s.info);
        else process.stdout.write(`${s.id}\n`);
      }),
    );

  sb.command('ls')
    .description('list sandboxes')
    .option('--label <k=v>', 'only sandboxes with this label (repeatable)', collectList, [])
    .option('--status <status>', 'only running, stopped, …')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { label: string[]; status?: string; json?: boolean }) => {
        const list = await Sandbox.list(
          { labels: pairs(f.label, '--label'), ...(f.status ? { status: f.status } : {}) },
          await client(),
        );
        if (f.json) printJson(list);
        else if (list.some((x) => x.node !== undefined))
          // In a cluster: which node each lives on.
          printTable(
            ['ID', 'NAME', 'NODE', 'STATUS', 'IMAGE', 'DRIVER', 'MEMORY', 'NETWORK', 'CREATED', 'EXPIRES'],
            list.map((x) => {
              const r = row(x);
              r.splice(2, 0, x.node ?? '-');
              return r;
            }),
          );
        else printTable(['ID', 'NAME', 'STATUS', 'IMAGE', 'DRIVER', 'MEMORY', 'NETWORK', 'CREATED', 'EXPIRES'], list.map(row));
      }),
    );

  sb.command('inspect')
    .description('show one sandbox as JSON')
    .argument('<id>', 'sandbox id or name')
    .action(
      action(async (id: string) => {
        printJson((await Sandbox.get(id, await client())).info);
      }),
    );

  sb.command('exec')
    .description('run a command in a sandbox: realm sandbox exec ID -- CMD…')
    .argument('<id>', 'sandbox id or name')
    .argument('<command...>', 'the command and its arguments')
    .option('--timeout <duration>', 'wall-time limit', '60s')
    .option('--stdin <text>', 'text given on stdin')
    .option('-i, --interactive', "give the command this process's stdin (read to its end first)")
    .option('--cwd <dir>', 'working directory inside the sandbox')
    .option('--env <K=V>', 'environment variable (repeatable)', collectList, [])
    .option('--fuel <n>', 'wasm sandboxes: an instruction budget (Wasmtime fuel); past it the verdict is fuel-exhausted')
    .option('--json', 'print the result as JSON')
    .action(
      action(
        async (
          id: string,
          command: string[],
          f: {
            timeout: string;
            stdin?: string;
            interactive?: boolean;
            cwd?: string;
            env: string[];
            fuel?: string;
            json?: boolean;
          },
        ) => {
          const s = await Sandbox.get(id, await client());
          if (f.fuel !== undefined && !/^[1-9]\d*$/.test(f.fuel)) {
            throw new RealmError('INVALID_REQUEST', `--fuel is a whole number above 0, e.g. 1000000; got "${f.fuel}"`);
          }
          const opts = {
            timeout: f.timeout,
            env: pairs(f.env, '--env'),
            ...(await stdinOption(f)),
            ...(f.cwd ? { cwd: f.cwd } : {}),
            ...(f.fuel !== undefined ? { fuel: Number(f.fuel) } : {}),
          };
          const r = f.json ? await s.exec(command, opts) : await printStream(s.execStream(command, opts));
          if (f.json) printJson(r);
          process.exitCode = exitCodeOf(r);
        },
      ),
    );

  sb.command('cp')
    .description('copy a file into a sandbox or out of it: realm sandbox cp FILE ID:PATH, or ID:PATH FILE')
    .argument('<from>', 'a local file, or ID:PATH (PATH relative to /home/user, or absolute)')
    .argument('<to>', 'ID:PATH, or a local file')
    .option('--mode <octal>', "the copy's mode inside the sandbox, e.g. 755")
    .action(
      action(async (from: string, to: string, f: { mode?: string }) => {
        const remote = (x: string): { id: string; path: string } | undefined => {
          const m = /^([^/:]+):(.+)$/.exec(x);
          return m?.[1] && m[2] ? { id: m[1], path: m[2] } : undefined;
        };
        const src = remote(from);
        const dst = remote(to);
        if (!!src === !!dst)
          throw new RealmError(
            'INVALID_REQUEST',
            'give one local file and one ID:PATH, e.g. realm sandbox cp main.wasm sb-1:main.wasm',
          );
        if (f.mode !== undefined && !/^[0-7]{3,4}$/.test(f.mode))
          throw new RealmError('INVALID_REQUEST', `--mode is octal, e.g. 755; got "${f.mode}"`);
        if (dst) {
          const s = await Sandbox.get(dst.id, await client());
          await s.files.write(dst.path, readFileSync(from), { parents: true, ...(f.mode ? { mode: parseInt(f.mode, 8) } : {}) });
        } else if (src) {
          const s = await Sandbox.get(src.id, await client());
          writeFileSync(to, await s.files.read(src.path));
        }
      }),
    );

  sb.command('shell')
    .description('an interactive terminal in a sandbox (a shell unless a command is given)')
    .argument('<id>', 'sandbox id or name')
    .argument('[command...]', 'what to run instead of a shell')
    .action(
      action(async (id: string, command: string[]) => {
        const s = await Sandbox.get(id, await client());
        await attachTerminal((size) => s.attach(command.length ? command : DEFAULT_SHELL, size));
      }),
    );

  for (const verb of ['stop', 'start'] as const) {
    sb.command(verb)
      .description(verb === 'stop' ? 'stop a sandbox (its files stay)' : 'start a stopped sandbox')
      .argument('<id>', 'sandbox id or name')
      .action(
        action(async (id: string) => {
          const s = await Sandbox.get(id, await client());
          await s[verb]();
          process.stdout.write(`${s.id} ${s.info.status}\n`);
        }),
      );
  }

  sb.command('url')
    .description(
      "print a signed, expiring link to a port of the sandbox through the gateway (http://<port>-<id>.realm.localhost:8080/); a server bound to the sandbox's 127.0.0.1 is reached",
    )
    .argument('<id>', 'sandbox id or name')
    .argument('<port>', 'the port inside the sandbox')
    .option('--expires <duration>', 'how long the link works: 30m, 1h, 7d', '1h')
    .option('--public', 'anyone may open the port while the link lives, without a token')
    .option('--revoke', 'revoke every link to the port (and the cookies they became) instead')
    .option('--json', 'print JSON')
    .action(
      action(async (id: string, portText: string, f: { expires: string; public?: boolean; revoke?: boolean; json?: boolean }) => {
        const port = Number(portText);
        if (!Number.isInteger(port) || port < 1 || port > 65535)
          throw new RealmError('INVALID_REQUEST', `port "${portText}": a number 1-65535`);
        const s = await Sandbox.get(id, await client());
        if (f.revoke) {
          const n = await s.revokeUrls(port);
          if (f.json) printJson({ revoked: n });
          else process.stdout.write(`revoked ${n} link${n === 1 ? '' : 's'} to port ${port} of ${s.id}\n`);
          return;
        }
        const u = await s.url(port, { expires: f.expires, public: f.public ?? false });
        if (f.json) printJson(u);
        else process.stdout.write(`${u.url}\n`);
      }),
    );
  statsCommand(sb);

  sb.command('rm')
    .description('destroy sandboxes (their volumes stay)')
    .argument('<ids...>', 'sandbox ids or names')
    .action(
      action(async (ids: string[]) => {
        const c = await client();
        for (const id of ids) {
          await (await Sandbox.get(id, c)).destroy();
          process.stdout.write(`${id}\n`);
        }
      }),
    );
}
