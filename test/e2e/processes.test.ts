/** Background processes: detached start, list, reconnect to output, stdin, signal, kill — and gone with the sandbox. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ProcessEvent, Sandbox } from '@realm/sdk';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping background process tests: ${skip}`);

async function collect(
  events: AsyncIterable<ProcessEvent>,
  until?: (text: string) => boolean,
): Promise<{ text: string; exit?: ProcessEvent }> {
  let text = '';
  for await (const ev of events) {
    if (ev.type === 'exit') return { text, exit: ev };
    text += ev.data;
    if (until?.(text)) return { text };
  }
  return { text };
}

void describe('background processes', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  void it('start returns at once; output can be followed, left, and replayed from the start', async () => {
    const sb = await Sandbox.create({}, t.client);
    const p = await sb.processes.start('echo one; read line; echo "got $line"; echo err >&2; exit 3');
    assert.equal(p.info.status, 'running');
    const abort = new AbortController();
    const first = await collect(p.output(abort.signal), (s) => s.includes('one'));
    abort.abort();
    assert.equal(first.text, 'one\n');
    await p.write('hello\n');
    const all = await collect(p.output());
    assert.equal(all.text.replace('err\n', ''), 'one\ngot hello\n');
    assert.match(all.text, /err/);
    assert.equal(all.exit?.type === 'exit' && all.exit.exit.exitCode, 3);
    assert.equal((await p.refresh()).status, 'exited');
    assert.deepEqual(
      (await sb.processes.list()).map((x) => x.id),
      [p.id],
    );
    await sb.destroy();
  });

  void it('a follower that comes as a short process ends gets its output before its exit', async () => {
    // The exit can be told before the pipes' last bytes are read: it waits for them (a follower
    // told the exit first missed them, one time in five here).
    const sb = await Sandbox.create({}, t.client);
    for (let i = 0; i < 20; i++) {
      const p = await sb.processes.start(`echo short-${i}`);
      const got = await collect(p.output());
      assert.equal(got.text, `short-${i}\n`, `run ${i}`);
      assert.equal(got.exit?.type === 'exit' && got.exit.exit.exitCode, 0);
    }
    await sb.destroy();
  });

  void it('signal and kill end it (children included); destroy ends the rest', async () => {
    const sb = await Sandbox.create({}, t.client);
    const a = await sb.processes.start([
      '/bin/sh',
      '-c',
      'trap "echo bye; exit 0" TERM; echo ready; while :; do sleep 0.05; done',
    ]);
    await collect(a.output(), (s) => s.includes('ready'));
    await a.signal('SIGTERM');
    const out = await collect(a.output());
    assert.match(out.text, /bye/);
    const b = await sb.processes.start('sleep 1000 & sleep 1000');
    await b.kill();
    const ps = "for p in /proc/[0-9]*; do tr '\\\\0' ' ' < $p/cmdline; echo; done";
    assert.doesNotMatch((await sb.exec(ps)).stdout, /sleep 1000/);
    await assert.rejects(b.write('x'), (e) => (e as { code?: string }).code === 'PROCESS_NOT_RUNNING');
    await assert.rejects(sb.processes.get('p-nope'), (e) => (e as { code?: string }).code === 'PROCESS_NOT_FOUND');
    await sb.processes.start('sleep 1000');
    await sb.destroy();
    assert.deepEqual(await leftovers(t), []);
  });
});
