/** `realm doctor`: what this host can do, as the daemon found it. */
import type { Command } from 'commander';
import { nodeInfo } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { printJson } from '../output.js';
import { capabilityLines } from '../driver-capabilities.js';

export function register(program: Command): void {
  program
    .command('doctor')
    .description('what this host can do: drivers, cgroups, seccomp, user namespaces (with reasons)')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const info = await nodeInfo(await client());
        if (f.json) return printJson(info);
        process.stdout.write(`realm ${info.version} on ${info.hostname} (${info.platform}), data in ${info.dataDir}\n\n`);
        for (const d of info.drivers) {
          process.stdout.write(`driver ${d.name}: ${d.available ? 'available' : `NOT available: ${d.reason ?? ''}`}\n`);
          for (const [k, v] of Object.entries(d.details)) process.stdout.write(`  ${k.padEnd(20)} ${String(v)}\n`);
          for (const line of capabilityLines(d.capabilities)) process.stdout.write(`${line}\n`);
        }
        for (const name of ['wasm']) {
          if (!info.drivers.some((d) => d.name === name))
            process.stdout.write(`driver ${name}: NOT available: not built into this version of realm yet\n`);
        }
        const b = info.imageBuilds;
        if (b)
          process.stdout.write(
            `image builds: ${b.available ? `available (mmdebstrap ${b.version ?? ''})` : `NOT available: ${b.reason ?? ''}`}\n`,
          );
        if (info.egress) process.stdout.write(`network all: ${info.egress.networkAll}\n`);
        const c = info.cluster;
        if (c?.clustered)
          process.stdout.write(
            `cluster: node ${c.id}${c.tags.length ? ` (tags ${c.tags.join(', ')})` : ''}, ${c.fenced ? 'CUT OFF from etcd: it takes no new work until etcd answers' : 'in touch with etcd'}${c.scheduler ? `; jobs placed by node ${c.scheduler}` : ''}\n`,
          );
        else if (c) process.stdout.write(`cluster: none (node ${c.id} works alone; realm serve --cluster joins one)\n`);
        const tr = info.tracing;
        if (tr)
          process.stdout.write(
            tr.enabled
              ? `tracing: on, spans exported by OTLP to ${tr.endpoint ?? '(unknown)'}\n`
              : 'tracing: off (realm serve --otlp-endpoint URL, or OTEL_EXPORTER_OTLP_ENDPOINT, turns it on)\n',
          );
        // What this daemon opens beyond realm's closed defaults (the daemon knows its own flags).
        for (const w of info.warnings ?? []) process.stdout.write(`WARNING: ${w}\n`);
      }),
    );
}
