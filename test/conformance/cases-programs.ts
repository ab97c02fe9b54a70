/**
 * Conformance cases written once over the per-driver program table (programs.ts): exit codes and
 * streams, stdin, env and args, files in, the output, wall-time and memory limits, and one-shot
 * runs with their verdicts. They run on every driver, wasm included.
 */
import assert from 'node:assert/strict';
import { run } from '@realm/sdk';
import type { ConformanceCase, ConformanceContext } from './context.js';
import { programsFor } from './programs.js';

/** A sandbox of the context's driver with the tool installed. */
async function toolSandbox(ctx: ConformanceContext, opts: Parameters<ConformanceContext['sandbox']>[0] = {}) {
  const p = await programsFor(ctx.driver);
  const sb = await ctx.sandbox(opts);
  await p.install(sb);
  return { p, sb };
}

export const programCases: ConformanceCase[] = [
  {
    name: 'programs: stdout and stderr stay apart; the exit code comes back as a verdict',
    async run(ctx) {
      const { p, sb } = await toolSandbox(ctx);
      const r = await sb.exec(p.argv('outerr'));
      assert.equal(r.stdout, 'out\n');
      assert.equal(r.stderr, 'err\n');
      assert.equal(r.exitCode, 7);
      assert.equal(r.verdict, 'runtime-error');
      const ok = await sb.exec(p.argv('exit', '0'));
      assert.equal(ok.exitCode, 0);
      assert.equal(ok.verdict, 'ok');
      assert.ok(ok.wallMs >= 0 && ok.cpuMs >= 0);
      await sb.destroy();
    },
  },
  {
    name: "programs: stdin, the sandbox's and the exec's environment, args and files reach the program",
    async run(ctx) {
      const { p, sb } = await toolSandbox(ctx, { env: { FROM_SANDBOX: 'a' } });
      const r = await sb.exec(p.argv('catenv'), { stdin: 'in put\n', env: { FROM_EXEC: 'b' } });
      assert.equal(r.stdout, 'in put\nab\n');
      assert.equal((await sb.exec(p.argv('args', 'one', 'two words', ''))).stdout, 'one\ntwo words\n\n');
      await sb.files.write('/home/user/in.txt', 'from the files API\n');
      assert.equal((await sb.exec(p.argv('cat', 'in.txt'))).stdout, 'from the files API\n');
      await sb.destroy();
    },
  },
  {
    name: 'programs: the output limit cuts a flood with verdict output-limit',
    async run(ctx) {
      const { p, sb } = await toolSandbox(ctx);
      const r = await sb.exec(p.argv('flood'), { output: '64k', timeout: '20s' });
      assert.equal(r.verdict, 'output-limit');
      assert.equal(r.stdout.length + r.stderr.length, 64 * 1024);
      await sb.destroy();
    },
  },
  {
    name: 'programs: the wall-time limit ends an endless loop with verdict timeout; the sandbox lives on',
    async run(ctx) {
      const { p, sb } = await toolSandbox(ctx);
      const r = await sb.exec(p.argv('spin'), { timeout: '1s' });
      assert.equal(r.verdict, 'timeout');
      assert.equal((await sb.exec(p.argv('exit', '0'))).verdict, 'ok');
      await sb.destroy();
    },
  },
  {
    name: 'programs: past the memory limit a program fails (oom, or a failed allocation in wasm); within it, it fits',
    needs: ['perExecMemoryLimit'],
    async run(ctx) {
      const { p, sb } = await toolSandbox(ctx, { memory: '64m' });
      const over = await sb.exec(p.argv('alloc', '200'), { timeout: '20s' });
      assert.equal(over.verdict, p.overMemory, JSON.stringify(over));
      assert.equal(over.stdout, '');
      assert.equal((await sb.exec(p.argv('alloc', '16'), { timeout: '20s' })).stdout, 'fits\n');
      // An exec's own limit, tighter than the sandbox's.
      const big = await toolSandbox(ctx, { memory: '512m' });
      const tight = await big.sb.exec(big.p.argv('alloc', '100'), { memory: '32m', timeout: '20s' });
      assert.equal(tight.verdict, p.overMemory, JSON.stringify(tight));
      assert.equal((await big.sb.exec(big.p.argv('alloc', '100'), { timeout: '20s' })).stdout, 'fits\n');
      await sb.destroy();
      await big.sb.destroy();
    },
  },
  {
    name: 'runs: a one-shot run takes stdin and args; exit codes, timeout and output-limit are its verdicts',
    async run(ctx) {
      const p = await programsFor(ctx.driver);
      const go = (args: string[], opts: Partial<Parameters<typeof run>[0]> = {}) =>
        run({ driver: ctx.driver, ...p.run, args, timeout: '20s', ...opts }, ctx.client);
      const ok = await go(['catenv'], { stdin: 'there\n' });
      assert.equal(ok.verdict, 'ok', JSON.stringify(ok));
      assert.equal(ok.stdout, 'there\n\n');
      assert.equal((await go(['args', 'a', 'b c'])).stdout, 'a\nb c\n');
      const re = await go(['exit', '3']);
      assert.equal(re.verdict, 'runtime-error');
      assert.equal(re.exitCode, 3);
      assert.equal((await go(['spin'], { timeout: '500ms' })).verdict, 'timeout');
      const ol = await go(['flood'], { output: '10k' });
      assert.equal(ol.verdict, 'output-limit');
      assert.equal(ol.stdout.length, 10 * 1024);
    },
  },
];
