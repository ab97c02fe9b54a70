import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import { RealmError, type RunOptions, run, runStream } from '@realm/sdk';
import { client } from '../daemon-client.js';
import { action, collectList, exitCodeOf, stdinOption } from '../action.js';
import { placementOf } from '../placement.js';
import { printJson, printStream } from '../output.js';

interface RunFlags {
  node?: string;
  tag: string[];
  platform?: string;
  code?: string;
  driver?: string;
  stdin?: string;
  interactive?: boolean;
  timeout?: string;
  memory?: string;
  compileTimeout?: string;
  compileMemory?: string;
  compilePids?: string;
  fuel?: string;
  json?: boolean;
}

/** A file to send: text as it is, anything else (a wasm module, say) as base64. */
function fileSpec(path: string): { name: string; content: string; encoding?: 'base64' } {
  const bytes = readFileSync(path);
  const text = bytes.toString('utf8');
  const binary = bytes.includes(0) || !Buffer.from(text, 'utf8').equals(bytes);
  return binary
    ? { name: basename(path), content: bytes.toString('base64'), encoding: 'base64' }
    : { name: basename(path), content: text };
}

/** A whole number given on the command line, or INVALID_REQUEST saying what to write. */
function count(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new RealmError('INVALID_REQUEST', `${flag} is a whole number, e.g. 512; got "${text}"`);
  return Number(text);
}

export function register(program: Command): void {
  program
    .command('run')
    .description('run a program once in a fresh sandbox and print its output')
    .argument('<language>', 'language name or alias (`realm lang ls`)')
    .argument('[file]', 'source file to run (or use -c)')
    .argument('[args...]', 'arguments for the program')
    .option('-c, --code <code>', 'source code to run')
    .option('--stdin <text>', 'text given to the program on stdin')
    .option('-i, --interactive', "give the program this process's stdin (read to its end first)")
    .option('--timeout <duration>', 'wall-time limit, e.g. 5s', '10s')
    .option('--memory <size>', 'memory limit, e.g. 256m', '256m')
    .option('--compile-timeout <duration>', 'wall-time limit of the compile step of compiled languages, e.g. 60s (default 30s)')
    .option('--compile-memory <size>', 'memory limit of the compile step, e.g. 2g (default 1g)')
    .option('--compile-pids <n>', 'processes and threads of the compile step (default 512)')
    .option(
      '--driver <name>',
      'isolation: namespace (default), gvisor, microvm or wasm (`realm doctor` shows what this node offers)',
    )
    .option('--fuel <n>', 'wasm: an instruction budget (Wasmtime fuel); past it the verdict is fuel-exhausted')
    .option('--node <id>', 'in a cluster: run on this node (`realm node ls`)')
    .option('--tag <tag>', 'in a cluster: only on a node with this tag (repeatable)', collectList, [])
    .option('--platform <os/arch>', 'in a cluster: only on a node of this platform, e.g. linux/amd64 (`realm node ls`)')
    .option(
      '--json',
      "print {stdout, stderr, exitCode, signal, verdict, wallMs, cpuMs, memoryBytes} (and compile, the compile step's result)",
    )
    .action(
      action(async (language: string, file: string | undefined, args: string[], f: RunFlags) => {
        if (f.code === undefined && !file) throw new RealmError('INVALID_REQUEST', 'give a source FILE or the code with -c');
        const files = f.code !== undefined ? undefined : [fileSpec(file ?? '')];
        const opts: RunOptions = {
          language,
          ...(f.code !== undefined ? { code: f.code } : { files: files ?? [] }),
          args,
          ...(await stdinOption(f)),
          ...(f.timeout ? { timeout: f.timeout } : {}),
          ...(f.memory ? { memory: f.memory } : {}),
          ...(f.compileTimeout ? { compileTimeout: f.compileTimeout } : {}),
          ...(f.compileMemory ? { compileMemory: f.compileMemory } : {}),
          ...(f.compilePids !== undefined ? { compilePids: count('--compile-pids', f.compilePids) } : {}),
          ...(f.driver ? { driver: f.driver as RunOptions['driver'] } : {}),
          ...(f.fuel !== undefined ? { fuel: count('--fuel', f.fuel) } : {}),
          ...placementOf(f),
        };
        if (f.json) {
          const r = await run(opts, await client());
          printJson({
            stdout: r.stdout,
            stderr: r.stderr,
            exitCode: r.exitCode,
            signal: r.signal,
            verdict: r.verdict,
            wallMs: r.wallMs,
            cpuMs: r.cpuMs,
            memoryBytes: r.memoryBytes,
            ...(r.compile ? { compile: r.compile } : {}),
          });
          process.exitCode = r.verdict === 'compile-error' ? 1 : exitCodeOf(r);
          return;
        }
        const r = await printStream(runStream(opts, await client()));
        process.exitCode = r.verdict === 'compile-error' ? 1 : exitCodeOf(r);
      }),
    );
}
