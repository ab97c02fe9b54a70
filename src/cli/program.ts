/** The commands, each in a module of its own, loaded only when named (or all, for help). */
import { Command } from 'commander';
import { VERSION } from '../version.js';

type Register = (program: Command) => void;

/** Command names (and aliases) → their module, in the order `realm --help` lists them. */
const COMMANDS: [names: string[], load: () => Promise<{ register: Register }>][] = [
  [['run'], () => import('./commands/run.js')],
  [['sandbox', 'sb'], () => import('./commands/sandbox.js')],
  [['ws'], () => import('./commands/ws.js')],
  [['image'], () => import('./commands/image.js')],
  [['volume'], () => import('./commands/volume.js')],
  [['blob'], () => import('./commands/blob.js')],
  [['job'], () => import('./commands/job.js')],
  [['node'], () => import('./commands/node.js')],
  [['cluster'], () => import('./commands/cluster.js')],
  [['push'], () => import('./commands/push.js')],
  [['svc'], () => import('./commands/svc.js')],
  [['key'], () => import('./commands/key.js')],
  [['apply'], () => import('./commands/apply.js')],
  [['manifest'], () => import('./commands/manifest.js')],
  [['upgrade'], () => import('./commands/upgrade.js')],
  [['package'], () => import('./commands/package.js')],
  [['token'], () => import('./commands/token.js')],
  [['doctor'], () => import('./commands/doctor.js')],
  [['lang'], () => import('./commands/lang.js')],
  [['mcp'], () => import('./commands/mcp.js')],
  [['serve'], () => import('./commands/serve.js')],
  [['quickstart'], () => import('./commands/quickstart.js')],
  [['logs'], () => import('./commands/logs.js')],
];

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program.name('realm').description('run untrusted code behind real isolation').version(VERSION);
  // realm's own options (--version) only before the command: `realm apply --version N` is apply's.
  program.enablePositionalOptions();
  // realm's own options take no values, so the first word that is not an option names the command.
  const word = argv.slice(2).find((a) => !a.startsWith('-'));
  const named = COMMANDS.filter(([names]) => word !== undefined && names.includes(word));
  // No command, or one we do not know: all of them, for the help text and commander's suggestions.
  const modules = await Promise.all((named.length ? named : COMMANDS).map(([, load]) => load()));
  for (const m of modules) m.register(program);
  await program.parseAsync(argv);
}
