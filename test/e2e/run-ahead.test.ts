/**
 * Python started ahead: a warm one-shot sandbox of the namespace driver starts its interpreter
 * before the run comes, waiting on its main file (a FIFO until the run's files and stdin are in
 * place). The program must not be able to tell: what it sees of itself is compared with a run
 * whose interpreter starts with it (one given an argument), and its main file, stdin, a large
 * source and a traceback's source line are checked. And it really starts ahead: its process is
 * older than the request.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { run } from '@realm/sdk';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping python-ahead tests: ${skip}`);

/** What a python program sees of itself (all but its arguments and its process's age). */
const INTROSPECT = `import os, stat, sys
print(__file__, sys.argv[0], sys.path[0], sys.orig_argv[:3], __name__, __cached__, __spec__)
print(type(__loader__).__name__, __loader__.name, __loader__.path)
print(sorted(sys.modules))
print(sorted(k for k in os.environ), os.getcwd(), sys.stdout.write_through, sys.flags.dont_write_bytecode)
st = os.fstat(0)
print(stat.S_IFMT(st.st_mode), os.isatty(0), sys.stdin.seekable(), repr(sys.stdin.read()))
print(sorted(os.listdir('.')), oct(os.stat('main.py').st_mode), os.stat('main.py').st_size)
print(open(__file__).read() == open('/home/user/main.py').read(), len(open(__file__).read()))
print(sorted(os.listdir('/proc/self/fd')))
`;

/** The same for node (with its heap's limit, which a Node may size by the memory it starts with). */
const INTROSPECT_NODE = `const fs = require('fs'), v8 = require('v8');
console.log(__filename, process.argv.slice(0, 2), require.main === module, module.paths, process.execArgv);
console.log(Object.keys(process.env).sort(), process.cwd(), v8.getHeapStatistics().heap_size_limit);
console.log(fs.fstatSync(0).mode, JSON.stringify(fs.readFileSync(0, 'utf8')));
console.log(fs.readdirSync('.'), fs.statSync('main.js').mode.toString(8), fs.readFileSync(__filename, 'utf8').length);
console.log(fs.readdirSync('/proc/self/fd').length);
`;

/** This host's time since boot in clock ticks (USER_HZ 100), as /proc/<pid>/stat counts a start. */
const ticksNow = (): number => Math.floor(Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 100);

void describe('python started ahead (namespace driver)', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 2 }, skip);

  void it('sees itself as a python started with its run: file, argv, path, modules, environment, stdin, home', async () => {
    for (const stdin of ['', 'line one\nline two\n']) {
      const ahead = await run({ driver: 'namespace', language: 'python', code: INTROSPECT, stdin }, t.client);
      // An argument: the interpreter starts with the run.
      const withRun = await run({ driver: 'namespace', language: 'python', code: INTROSPECT, stdin, args: ['x'] }, t.client);
      assert.equal(ahead.verdict, 'ok', JSON.stringify(ahead));
      assert.equal(withRun.verdict, 'ok', JSON.stringify(withRun));
      assert.equal(ahead.stdout, withRun.stdout);
      assert.match(ahead.stdout, /^\/home\/user\/main\.py main\.py \/home\/user \['\/usr\/bin\/python3', '-u', 'main\.py'\]/);
      assert.ok(ahead.stdout.includes(`${JSON.stringify(stdin).replace(/"/g, "'")}\n`), ahead.stdout);
      assert.match(ahead.stdout, /\['main\.py'\] 0o100644 /, 'its home holds its main file, a plain file, and nothing else');
    }
  });

  void it('node sees itself as a node started with its run, at two memory limits', async () => {
    for (const memory of ['256m', '1g']) {
      const ahead = await run({ driver: 'namespace', language: 'node', code: INTROSPECT_NODE, stdin: 'in', memory }, t.client);
      const withRun = await run(
        { driver: 'namespace', language: 'node', code: INTROSPECT_NODE, stdin: 'in', memory, args: ['x'] },
        t.client,
      );
      assert.equal(ahead.verdict, 'ok', JSON.stringify(ahead));
      assert.equal(ahead.stdout, withRun.stdout, memory);
      assert.match(ahead.stdout, /^\/home\/user\/main\.js \[ '\/usr\/bin\/node', '\/home\/user\/main\.js' \] true/);
    }
    const thrown = await run({ driver: 'namespace', language: 'node', code: 'const x = 1;\nnull.y;\n' }, t.client);
    assert.equal(thrown.verdict, 'runtime-error');
    assert.match(thrown.stderr, /^\/home\/user\/main\.js:2\nnull\.y;\n/);
  });

  void it('refuses a second file named as the main file', async () => {
    await assert.rejects(
      run(
        {
          driver: 'namespace',
          language: 'python',
          files: [{ content: 'print(1)' }, { name: 'main.py', content: 'print(2)' }],
        },
        t.client,
      ),
      (e: unknown) => (e as { code?: string }).code === 'INVALID_REQUEST' && /two files are named main\.py/.test(String(e)),
    );
  });

  void it('refuses a file its sandbox cannot hold, saying which, started ahead or not', async () => {
    for (const args of [[], ['x']]) {
      await assert.rejects(
        run(
          {
            driver: 'namespace',
            language: 'python',
            files: [{ content: 'print(1)' }, { name: 'main.py/inner.py', content: '' }],
            args,
          },
          t.client,
        ),
        (e: unknown) =>
          (e as { code?: string }).code === 'INVALID_REQUEST' &&
          /files could not be written \(main\.py\/inner\.py: Not a directory\)/.test(String(e)),
      );
    }
  });

  void it('reads a main file larger than a pipe holds, a large stdin, other files, and shows source lines in tracebacks', async () => {
    const filler = `# ${'x'.repeat(100)}\n`.repeat(3000); // ~300 KiB of source
    const code = `${filler}import sys, helper\ndata = sys.stdin.read()\nprint(len(data), data[-3:], helper.twice(21))\nraise ValueError("boom")\n`;
    const stdin = `${'y'.repeat(200_000)}end`;
    const r = await run(
      {
        driver: 'namespace',
        language: 'python',
        files: [{ content: code }, { name: 'helper.py', content: 'def twice(x): return 2 * x' }],
        stdin,
      },
      t.client,
    );
    assert.equal(r.verdict, 'runtime-error', JSON.stringify({ ...r, stdout: r.stdout.slice(0, 200) }));
    assert.equal(r.stdout, `200003 end 42\n`);
    assert.match(
      r.stderr,
      /File "\/home\/user\/main\.py", line 3004, in <module>\n {4}raise ValueError\("boom"\)\nValueError: boom/,
    );
  });

  void it('starts before its request where a warm sandbox waits, and with its run otherwise', async () => {
    // The process's start (in clock ticks since boot) against the host's clock as the request
    // leaves: earlier for an interpreter started ahead, never for one started with its run.
    const started = {
      python: 'print(int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]))',
      node: "console.log(require('fs').readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[19])",
    };
    const startOf = async (
      args: string[],
      memory?: string,
      language: 'python' | 'node' = 'python',
    ): Promise<{ started: number; posted: number }> => {
      const posted = ticksNow();
      const r = await run(
        { driver: 'namespace', language, code: started[language], args, ...(memory ? { memory } : {}) },
        t.client,
      );
      assert.equal(r.verdict, 'ok', JSON.stringify(r));
      return { started: Number(r.stdout.trim()), posted };
    };
    // The pool may still be refilling after the tests above: give it time, a few tries.
    let seen: { started: number; posted: number } | undefined;
    for (let i = 0; i < 5 && !seen; i++) {
      await sleep(1000);
      const s = await startOf([]);
      if (s.started < s.posted) seen = s;
    }
    assert.ok(seen, 'a python run found its interpreter started ahead');
    seen = undefined;
    for (let i = 0; i < 5 && !seen; i++) {
      await sleep(1000);
      const s = await startOf([], undefined, 'node');
      if (s.started < s.posted) seen = s;
    }
    assert.ok(seen, 'a node run found its interpreter started ahead');
    await sleep(1000);
    const cold = await startOf(['x']);
    assert.ok(cold.started >= cold.posted, `a run with arguments starts its interpreter with it (${JSON.stringify(cold)})`);
    await sleep(1000);
    const small = await startOf([], '32m');
    assert.ok(
      small.started >= small.posted,
      `a run with little memory starts its interpreter with it (${JSON.stringify(small)})`,
    );
  });

  void it('leaves nothing behind', async () => {
    assert.deepEqual(await leftovers(t), []);
  });
});
