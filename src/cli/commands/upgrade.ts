/**
 * `realm upgrade --file realm-N.tgz --version N`: sign a release with the owner key, upload it
 * and have the nodes install it and restart into it; then follow each node to its outcome.
 * `realm upgrade status`: each node's release and its last upgrade.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { Client, NodeUpgradeStatus } from '@realm/sdk';
import { RealmError } from '../../util/errors.js';
import { defaultKeyPath } from '../../config.js';
import { client } from '../daemon-client.js';
import { action } from '../action.js';
import { ago, printJson, printTable } from '../output.js';

const FINAL = new Set(['succeeded', 'rolled-back', 'refused', 'failed']);
/** How long the nodes have, all together, to reach an outcome (they restart on the way). */
const FOLLOW_MS = 10 * 60_000;

function printStatus(nodes: NodeUpgradeStatus[]): void {
  printTable(
    ['NODE', 'RELEASE', 'PLATFORM', 'LAST', 'PHASE', 'WHEN', 'MESSAGE'],
    nodes.map((n) => [
      n.node,
      n.version,
      n.platform,
      n.last ? n.last.version : '-',
      n.last ? `${n.last.phase}${n.last.code ? ` (${n.last.code})` : ''}` : '-',
      n.last ? ago(n.last.at) : '-',
      n.last?.message ?? '',
    ]),
  );
}

/** Print each node's phases as they change until every target has an outcome of `request`. */
async function follow(c: Client, request: string, targets: string[], json: boolean): Promise<NodeUpgradeStatus[]> {
  const seen = new Map<string, string>();
  const until = Date.now() + FOLLOW_MS;
  let last: NodeUpgradeStatus[] = [];
  for (;;) {
    // The node asked may be restarting itself: an unanswered poll is tried again.
    const got = await c.upgrades.status().catch(() => null);
    if (got) {
      last = got.nodes.filter((n) => targets.includes(n.node));
      for (const n of last) {
        if (n.last?.request !== request) continue;
        const line = `${n.node}: ${n.last.phase}${n.last.code ? ` [${n.last.code}]` : ''} — ${n.last.message}`;
        if (seen.get(n.node) !== line && !json) process.stdout.write(`${line}\n`);
        seen.set(n.node, line);
      }
      if (targets.every((t) => last.some((n) => n.node === t && n.last?.request === request && FINAL.has(n.last.phase))))
        return last;
    }
    if (Date.now() > until)
      throw new RealmError(
        'INTERNAL',
        `not every node had an outcome within ${FOLLOW_MS / 60_000} min; \`realm upgrade status\` follows them`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function register(program: Command): void {
  const up = program
    .command('upgrade')
    .description(
      'upgrade realm on the nodes to a release signed with the owner key: each node checks signature, key, a higher version and its platform, installs the release beside the others, restarts into it (sandboxes kept) and rolls back by itself when the new one is not healthy',
    )
    .option('-f, --file <tgz>', 'the release: what `npm pack` of realm makes, or a tar.gz of the built tree')
    .option('--version <n>', 'its release number: above the one every target runs')
    .option('--tag <tag>', 'upgrade the nodes with this tag (repeat: every tag)', (v: string, a: string[]) => [...a, v], [])
    .option('--node <id>', 'upgrade this node (repeat; default: every node)', (v: string, a: string[]) => [...a, v], [])
    .option('--platform <os/arch>', 'the platform the release is built for (default: this machine’s)')
    .option('--key <file>', `the owner key (default ${defaultKeyPath()})`)
    .option('--no-wait', 'return once the nodes are asked, without following them')
    .option('--json', 'print JSON')
    .action(
      action(
        async (f: {
          file?: string;
          version?: string;
          tag: string[];
          node: string[];
          platform?: string;
          key?: string;
          wait: boolean;
          json?: boolean;
        }) => {
          if (!f.file || !f.version)
            throw new RealmError('INVALID_REQUEST', 'say what to install: realm upgrade --file realm-N.tgz --version N');
          if (!/^[1-9]\d{0,15}$/.test(f.version))
            throw new RealmError('INVALID_REQUEST', `--version ${f.version}: write a whole number from 1`);
          if (!existsSync(f.file)) throw new RealmError('INVALID_REQUEST', `--file ${f.file}: no such file`);
          const version = Number(f.version);
          const { loadKeyFile } = await import('../../signing/key-file.js');
          const { signPayload } = await import('../../signing/keys.js');
          const { releaseStatement } = await import('../../upgrade/statement.js');
          const { PLATFORM } = await import('../../cluster/report.js');
          const key = loadKeyFile(f.key ?? defaultKeyPath());
          const c = await client();
          // The digest is the one computed here while uploading: the signature covers these bytes.
          const { digest } = await c.blobs.put(f.file);
          const statement = releaseStatement({ version, digest, platform: f.platform ?? PLATFORM, owner: key.publicKey });
          const signature = signPayload(key.privateKey, statement);
          const r = await c.upgrades.create({ statement, signature, nodes: f.node, tags: f.tag });
          if (!f.wait) {
            if (f.json) return printJson(r);
            process.stdout.write(`asked ${r.nodes.join(', ')} to upgrade to release ${version} (${digest})\n`);
            return;
          }
          if (!f.json)
            process.stdout.write(`release ${version} (${digest}) signed by ${key.fingerprint}; asked ${r.nodes.join(', ')}\n`);
          const done = await follow(c, r.request, r.nodes, f.json === true);
          if (f.json) printJson({ ...r, outcome: done });
          const bad = done.filter((n) => n.last?.phase !== 'succeeded');
          if (bad.length) {
            process.stderr.write(`realm: release ${version} was not installed on ${bad.map((n) => n.node).join(', ')}\n`);
            process.exit(1);
          }
        },
      ),
    );
  up.command('status')
    .description('each node’s release and the phase or outcome of its last upgrade')
    .option('--json', 'print JSON')
    .action(
      action(async (f: { json?: boolean }) => {
        const { nodes } = await (await client()).upgrades.status();
        if (f.json) return printJson(nodes);
        printStatus(nodes);
      }),
    );
}
