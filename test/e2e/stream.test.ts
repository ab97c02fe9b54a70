/** Streaming over SSE: output arrives while the program runs, in order, and leaving kills it. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type ExecEvent, Sandbox, SandboxNotFoundError, runStream } from '@realm/sdk';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping streaming tests: ${skip}`);

void describe('streaming', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  void it('exec output arrives before the program ends, stdout and stderr apart, then the exit', async () => {
    const sb = await Sandbox.create({}, t.client);
    const events: ExecEvent[] = [];
    // The program only finishes after the test, having seen its first line, lets it.
    for await (const ev of sb.execStream('echo ready; echo warn >&2; while [ ! -f /tmp/go ]; do sleep 0.02; done; echo done')) {
      events.push(ev);
      if (ev.type === 'stdout' && ev.data.includes('ready')) await sb.exec('touch /tmp/go');
    }
    const out = events
      .filter((e) => e.type === 'stdout')
      .map((e) => (e as { data: string }).data)
      .join('');
    const err = events
      .filter((e) => e.type === 'stderr')
      .map((e) => (e as { data: string }).data)
      .join('');
    assert.equal(out, 'ready\ndone\n');
    assert.equal(err, 'warn\n');
    const last = events.at(-1);
    assert.equal(last?.type, 'exit');
    assert.equal(last.type === 'exit' && last.result.verdict, 'ok');
    await sb.destroy();
  });

  void it('a character split across writes is never split across events', async () => {
    const code =
      'import sys, time\nsys.stdout.buffer.write(b"\\xe2"); sys.stdout.flush(); time.sleep(0.2)\nsys.stdout.buffer.write(b"\\x82\\xac\\n")';
    let text = '';
    for await (const ev of runStream({ language: 'python', code }, t.client)) {
      if (ev.type === 'stdout') {
        assert.ok(!ev.data.includes('\uFFFD'), 'an event carried half a character');
        text += ev.data;
      }
    }
    assert.equal(text, '€\n');
  });

  void it('leaving the stream kills the program', async () => {
    const sb = await Sandbox.create({}, t.client);
    for await (const ev of sb.execStream(['/bin/sh', '-c', 'echo started; exec sleep 1000'])) {
      if (ev.type === 'stdout') break;
    }
    let left = '';
    for (let i = 0; i < 100; i++) {
      left = (await sb.exec('for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline; echo; done')).stdout;
      if (!left.includes('sleep 1000')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.doesNotMatch(left, /sleep 1000/);
    await sb.destroy();
  });

  void it('errors before the stream starts are typed errors; limits end it with a verdict', async () => {
    const gone = await Sandbox.create({}, t.client);
    await gone.destroy();
    await assert.rejects(async () => {
      for await (const ev of gone.execStream('true')) void ev;
    }, SandboxNotFoundError);
    let verdict = '';
    for await (const ev of runStream({ language: 'bash', code: 'yes', output: '8k' }, t.client))
      if (ev.type === 'exit') verdict = ev.result.verdict;
    assert.equal(verdict, 'output-limit');
    assert.deepEqual(await leftovers(t), []);
  });
});
