/** `realm svc ls|inspect|logs|history|scale|restart|rm`: process services (started with `realm push NAME --image …`). */
import type { Command } from 'commander';
import { apps } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';

export function register(program: Command): void {
  const svc = program
    .command('svc')
    .description(
      'process services: ls, inspect, logs, history, scale, restart, rm (start one with `realm push NAME --image IMG --command CMD --port P`)',
    );
  svc
    .command('ls')
    .description('list your services (process services, and the wasm apps of `realm push --file` as kind wasm)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const c = await client();
        const [services, wasm] = await Promise.all([c.services.list(), apps.list(c)]);
        if (f.json) return printJson({ services, apps: wasm });
        printTable(
          ['NAME', 'KIND', 'DESIRED', 'RUNNING', 'HEALTHY', 'RESTARTS', 'PORT', 'VISIBILITY', 'NODES', 'UPDATED', 'LAST ERROR'],
          [
            ...services.map((s) => [
              s.name,
              'process',
              String(s.replicas),
              String(s.running),
              String(s.healthy),
              String(s.restarts),
              String(s.port),
              s.visibility,
              // Replicas per node, as placed (a node alone: itself).
              s.placement.nodes.map((n) => `${n.node}:${n.replicas}`).join(',') || '-',
              ago(s.updatedAt),
              (s.lastError ?? '-').slice(0, 60),
            ]),
            ...wasm.map((a) => [
              a.name,
              'wasm',
              String(a.replicas),
              '-',
              '-',
              '-',
              '-',
              a.visibility,
              '-',
              ago(a.createdAt),
              '-',
            ]),
          ],
        );
      }),
    );
  svc
    .command('inspect')
    .description("a service's desired state and its replicas (JSON)")
    .argument('<name>')
    .action(action(async (name: string) => printJson(await (await client()).services.get(name))));
  svc
    .command('logs')
    .description(
      "the replicas' output, each line prefixed with its replica ([ID] stdout, [ID!] stderr, [ID realm] realm's notes)",
    )
    .argument('<name>')
    .option('-f, --follow', 'keep printing as it comes')
    .action(
      action(async (name: string, f: { follow?: boolean }) => {
        const c = await client();
        for await (const text of c.services.logs(name, { follow: !!f.follow })) process.stdout.write(text);
      }),
    );
  svc
    .command('scale')
    .description('set the number of replicas')
    .argument('<name>')
    .argument('<replicas>')
    .action(
      action(async (name: string, n: string) => {
        if (!/^\d+$/.test(n)) throw new Error(`${n}: write a whole number of replicas`);
        const s = await (await client()).services.scale(name, Number(n));
        process.stdout.write(`${s.name}: ${s.replicas} replicas wanted, ${s.running} running\n`);
      }),
    );
  svc
    .command('restart')
    .description('replace every replica, one at a time (rolled back if a new one fails its health check)')
    .argument('<name>')
    .action(
      action(async (name: string) => {
        const s = await (await client()).services.restart(name);
        process.stdout.write(`${s.name}: generation ${s.generation}\n`);
      }),
    );
  svc
    .command('history')
    .description('the generations of a service: spec digest, when, by whom, how each rollout ended (rolled-back: why)')
    .argument('<name>')
    .option('--json', 'print JSON')
    .action(
      action(async (name: string, f: { json?: boolean }) => {
        const history = await (await client()).services.history(name);
        if (f.json) return printJson(history);
        printTable(
          ['GENERATION', 'DIGEST', 'PACKAGE', 'WHEN', 'BY', 'CAUSE', 'OUTCOME', 'REASON'],
          history.map((h) => [
            String(h.generation),
            h.digest.slice(0, 19),
            h.package ? `${h.package.name}@${h.package.version}` : '-',
            ago(h.at),
            h.by,
            h.cause,
            h.outcome,
            h.reason ?? '-',
          ]),
        );
      }),
    );
  svc
    .command('rm')
    .description('remove services: every replica, its sandbox and processes go')
    .argument('<names...>')
    .action(
      action(async (names: string[]) => {
        const c = await client();
        for (const n of names) {
          await c.services.remove(n);
          process.stdout.write(`${n}\n`);
        }
      }),
    );
}
