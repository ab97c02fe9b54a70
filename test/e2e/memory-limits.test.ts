/**
 * A program starved of memory ends `oom` when the limit starves it, whether the kernel kills it or
 * it thrashes (a compiler whose own code no longer fits, evicted and read back in without end),
 * and never runs on to its time limit; Piston answers such a stage SG with a memory message.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { run } from '@realm/sdk';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping memory-limit tests: ${skip}`);
const noGxx = existsSync('/usr/bin/g++') ? false : 'g++ is not installed on this host (the host image has no C++ compiler)';

void describe('memory limits', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  void it(
    'a compiler thrashing under a small memory limit ends oom at once, not at its time limit',
    { skip: noGxx },
    async () => {
      // cc1plus under 20 MiB: the kernel evicts its code rather than killing it; realm sees the thrashing.
      const code =
        'cd /tmp && printf "#include <iostream>\\nint main(){std::cout<<1<<std::endl;}\\n" > a.cpp && g++ a.cpp -o a && ./a';
      const r = await run({ language: 'bash', code, memory: '20m', timeout: '30s' }, t.client);
      assert.equal(r.verdict, 'oom', JSON.stringify(r));
      assert.ok(r.wallMs < 15_000, `ended after ${r.wallMs} ms`);
      assert.ok(r.memoryBytes > 0);
      assert.deepEqual(await leftovers(t), []);
    },
  );

  void it('a program reading files again and again under a small limit is slow, not starved', { skip: noGxx }, async () => {
    // More than the limit, read 6 times: refaults, but through read(), with no code coming back.
    const files = '/usr/lib/gcc/x86_64-linux-gnu/*/cc1 /usr/lib/gcc/x86_64-linux-gnu/*/cc1plus';
    const r = await run(
      { language: 'bash', code: `for i in 1 2 3 4 5 6; do cat ${files} | wc -c; done`, memory: '20m', timeout: '60s' },
      t.client,
    );
    assert.equal(r.verdict, 'ok', JSON.stringify({ ...r, stdout: r.stdout.slice(0, 200) }));
  });

  void it('Piston: a compile killed for memory is SG with "Out of memory", as the run stage too', async () => {
    const fns = Array.from(
      { length: 3000 },
      (_, i) => `int f${i}(int x){int y=x*${i}+1; for(int j=0;j<x;j++) y^=j*${i}; return y;}\n`,
    ).join('');
    const res = await fetch(`${t.url}/api/v2/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${t.token}` },
      body: JSON.stringify({
        language: 'c',
        version: '*',
        files: [{ name: 'main.c', content: `#include <stdio.h>\n${fns}int main(void){puts("hi");return 0;}\n` }],
        compile_memory_limit: 20_000_000,
        compile_timeout: 30_000,
      }),
    });
    assert.equal(res.status, 200);
    const body = (await res.json()) as {
      compile?: { status: string | null; message: string | null; wall_time: number };
      run?: { status: string | null };
    };
    assert.equal(body.compile?.status, 'SG', JSON.stringify(body.compile));
    assert.equal(body.compile.message, 'Out of memory');
    assert.ok(body.compile.wall_time < 15_000, `ended after ${body.compile.wall_time} ms`);
    assert.equal(body.run?.status, 'SG');
  });
});
