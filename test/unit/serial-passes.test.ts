/** SerialPasses: passes never overlap; kicks during a pass make exactly one more; `may` gates each. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { SerialPasses } from '../../src/util/serial-passes.js';

void it('kicks during a pass make one more pass after it, never two at once; may() gates every pass', async () => {
  let running = 0;
  let most = 0;
  let passes = 0;
  let allowed = true;
  let release: () => void = () => undefined;
  const errors: unknown[] = [];
  const p = new SerialPasses(
    async () => {
      running++;
      most = Math.max(most, running);
      passes++;
      await new Promise<void>((r) => (release = r));
      running--;
      if (passes === 2) throw new Error('second pass failed');
    },
    () => allowed,
    (e) => errors.push(e),
  );
  p.kick();
  p.kick();
  p.kick();
  assert.equal(passes, 1);
  release();
  await new Promise((r) => setImmediate(r));
  assert.equal(passes, 2, 'the kicks made during the first pass made one more');
  release();
  await p.settled();
  await new Promise((r) => setImmediate(r));
  assert.equal(passes, 2);
  assert.equal(most, 1);
  assert.equal(errors.length, 1, 'a failed pass is reported, and the next kick still runs');
  allowed = false;
  p.kick();
  assert.equal(passes, 2, 'not while may() says no');
  allowed = true;
  p.kick();
  assert.equal(passes, 3);
  release();
  await p.settled();
});
