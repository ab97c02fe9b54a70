import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WarmPool, type PoolItem } from '../../src/engine/pool.js';

/** Pool items that only count themselves: this tests the pool's sizing, not what it holds. */
function items(): { make: () => Promise<PoolItem>; made: () => number; discarded: () => number } {
  let made = 0;
  let discarded = 0;
  return {
    make: () => Promise.resolve({ id: `i${++made}`, alive: () => true, discard: () => Promise.resolve(void discarded++) }),
    made: () => made,
    discarded: () => discarded,
  };
}

void test('a warm pool grows a shape that runs dry, up to its max, and shrinks it back when demand stops', async () => {
  const shrinkMs = 200;
  const pool = new WarmPool<PoolItem>(1, 60_000, 3, shrinkMs);
  const it = items();
  try {
    assert.equal(pool.take('k', it.make), undefined, 'the first request of a shape finds nothing ready');
    await pool.settled();
    assert.equal(pool.targets().get('k'), 1, 'a first request is not a miss');
    assert.equal(pool.items().length, 1);
    // A burst: one ready, then misses, each raising the target by one, never past max.
    const burst = [1, 2, 3, 4, 5].map(() => pool.take('k', it.make));
    assert.equal(burst.filter(Boolean).length, 1);
    assert.equal(pool.targets().get('k'), 3);
    await pool.settled();
    assert.equal(pool.items().length, 3, 'the shape refilled to its raised target');
    // No misses for a while: each request after that lowers the target by one, down to the size.
    await sleep(shrinkMs + 50);
    assert.ok(pool.take('k', it.make));
    assert.equal(pool.targets().get('k'), 2);
    await sleep(shrinkMs + 50);
    assert.ok(pool.take('k', it.make));
    assert.equal(pool.targets().get('k'), 1);
    await sleep(shrinkMs + 50);
    assert.ok(pool.take('k', it.make));
    assert.equal(pool.targets().get('k'), 1, 'never below the configured size');
  } finally {
    await pool.close();
  }
  assert.equal(it.discarded(), it.made() - 4, 'close discards everything still ready (4 were taken)');
});

void test('a pool of size 0 is off', async () => {
  const pool = new WarmPool<PoolItem>(0);
  const it = items();
  assert.equal(pool.take('k', it.make), undefined);
  await pool.settled();
  assert.equal(it.made(), 0);
  await pool.close();
});
