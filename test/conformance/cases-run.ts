/** Conformance cases: one-shot runs of each shipped language, with their verdicts. */
import assert from 'node:assert/strict';
import { LanguageNotFoundError, run } from '@realm/sdk';
import type { ConformanceCase } from './context.js';

const hello: Record<string, string> = {
  python: 'import sys; print("hi", sys.stdin.read().strip())',
  node: 'let d=""; process.stdin.on("data",c=>d+=c).on("end",()=>console.log("hi", d.trim()))',
  bash: 'read x; echo hi $x',
  c: '#include <stdio.h>\nint main(void){char b[64]; if(scanf("%63s", b)!=1) return 2; printf("hi %s\\n", b); return 0;}',
};

export const runCases: ConformanceCase[] = [
  {
    name: 'every shipped language runs with stdin',
    needs: ['nativePrograms'],
    async run(ctx) {
      for (const [language, code] of Object.entries(hello)) {
        const r = await run({ driver: ctx.driver, language, code, stdin: 'there\n' }, ctx.client);
        assert.equal(r.verdict, 'ok', `${language}: ${JSON.stringify(r)}`);
        assert.equal(r.stdout, 'hi there\n', language);
      }
    },
  },
  {
    name: 'verdicts: compile-error, runtime-error, timeout, oom, output-limit',
    needs: ['nativePrograms'],
    async run(ctx) {
      const ce = await run({ driver: ctx.driver, language: 'c', code: 'int main( { return 0; }' }, ctx.client);
      assert.equal(ce.verdict, 'compile-error');
      assert.match(ce.stderr, /error/);
      const re = await run({ driver: ctx.driver, language: 'python', code: 'raise SystemExit(3)' }, ctx.client);
      assert.equal(re.verdict, 'runtime-error');
      assert.equal(re.exitCode, 3);
      const to = await run({ driver: ctx.driver, language: 'python', code: 'while True: pass', timeout: '500ms' }, ctx.client);
      assert.equal(to.verdict, 'timeout');
      const oom = await run(
        { driver: ctx.driver, language: 'python', code: 'x = bytearray(512 * 1024 * 1024)', memory: '64m' },
        ctx.client,
      );
      assert.equal(oom.verdict, 'oom');
      // Some work first, then a flood: the run cut at its output limit reports what it really used.
      const ol = await run(
        { driver: ctx.driver, language: 'bash', code: 'for i in $(seq 1 30000); do :; done; yes', output: '10k' },
        ctx.client,
      );
      assert.equal(ol.verdict, 'output-limit');
      assert.equal(ol.stdout.length, 10 * 1024);
      assert.ok(ol.cpuMs > 0, `an output-limit run reports its cpu time (${ol.cpuMs} ms)`);
      assert.ok(ol.memoryBytes > 0, `an output-limit run reports its peak memory (${ol.memoryBytes} bytes)`);
    },
  },
  {
    name: 'a run reports the signal that ended it, and its background children die with it',
    needs: ['nativePrograms'],
    async run(ctx) {
      const seg = await run(
        { driver: ctx.driver, language: 'python', code: 'import os, signal; os.kill(os.getpid(), signal.SIGSEGV)' },
        ctx.client,
      );
      assert.equal(seg.signal, 'SIGSEGV');
      assert.equal(seg.exitCode, null);
      assert.equal(seg.verdict, 'runtime-error');
      const bg = await run(
        {
          driver: ctx.driver,
          language: 'bash',
          code: 'setsid sleep 1000 >/dev/null 2>&1 < /dev/null & (sleep 1000 &) ; echo done',
          timeout: '20s',
        },
        ctx.client,
      );
      assert.equal(bg.stdout, 'done\n');
      // A run that waited for its background children would end by its timeout (not a clock
      // reading here: under emulation a VM's boot alone can take seconds).
      assert.equal(bg.verdict, 'ok', 'the run waited for its background children');
      // The case runner then checks that no process of the run is left.
    },
  },
  {
    name: 'several files, args, and an unknown language',
    needs: ['nativePrograms'],
    async run(ctx) {
      const r = await run(
        {
          driver: ctx.driver,
          language: 'python',
          files: [
            { name: 'main.py', content: 'import sys; from lib import helper; print(helper.twice(int(sys.argv[1])))' },
            { name: 'lib/helper.py', content: 'def twice(x): return 2 * x' },
          ],
          args: ['21'],
        },
        ctx.client,
      );
      assert.equal(r.stdout, '42\n', JSON.stringify(r));
      await assert.rejects(
        run({ driver: ctx.driver, language: 'cobol-77', code: '' }, ctx.client),
        (e) => e instanceof LanguageNotFoundError,
      );
    },
  },
];
