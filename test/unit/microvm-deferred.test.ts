/**
 * A microvm one-shot run's program starts after its files are written through the guest agent. A
 * guest that stalls in that step must not hang the run: a kill (its wall-time limit, a cancel)
 * tears the sandbox down and the program ends as killed.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { deferred } from '../../src/drivers/microvm/deferred.js';
import type { DriverProcess, ExitInfo } from '../../src/drivers/driver.js';

void it('a program killed before it started ends as killed, its sandbox torn down, without waiting for the start', async () => {
  let rejectStart: (e: Error) => void = () => undefined;
  const start = new Promise<DriverProcess>((_, reject) => (rejectStart = reject));
  let aborted = 0;
  const proc = deferred(start, false, () => {
    aborted++;
    // Tearing the VM down ends the stalled file write (the agent's connection closes).
    rejectStart(new Error('cannot write main.py in the sandbox: exit null'));
    return Promise.resolve();
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout.resume();
  await proc.kill();
  assert.equal(aborted, 1);
  const exit = await proc.wait();
  assert.equal(exit.signal, 'SIGKILL');
  assert.equal(exit.exitCode, null);
  await new Promise((r) => setImmediate(r));
  assert.equal(err, '', 'the torn-down write is not reported as the program output');
});

void it('a program that started is killed itself, and a start that fails is reported', async () => {
  const out = new PassThrough();
  const errs = new PassThrough();
  let killed = 0;
  const exit: ExitInfo = { exitCode: 0, signal: null, oomKilled: false, cpuMs: 1, memoryBytes: 1 };
  const real: DriverProcess = {
    stdin: null,
    stdout: out,
    stderr: errs,
    signal: () => undefined,
    kill: () => {
      killed++;
      out.end();
      errs.end();
      return Promise.resolve();
    },
    wait: () => Promise.resolve(exit),
    release: () => Promise.resolve(),
  };
  const started = deferred(Promise.resolve(real), false, () => assert.fail('not aborted once started'));
  started.stdout.resume();
  started.stderr.resume();
  assert.deepEqual(await started.wait(), exit);
  await started.kill();
  assert.equal(killed, 1);

  const failed = deferred(Promise.reject(new Error('no such image')), false, () => Promise.resolve());
  let text = '';
  failed.stderr.on('data', (d: Buffer) => (text += d.toString()));
  failed.stdout.resume();
  await assert.rejects(failed.wait(), /no such image/);
  await new Promise((r) => setImmediate(r));
  assert.match(text, /realm: no such image/);
});
