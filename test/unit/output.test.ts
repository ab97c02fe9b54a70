import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ByteLog, OutputBudget, PIECE_BYTES, utf8Whole } from '../../src/engine/output.js';

void test('one-byte appends end up in few large pieces, charged to the budget and given back', () => {
  const budget = new OutputBudget(1024 ** 3);
  const log = new ByteLog(budget);
  const one = Buffer.from('x');
  for (let i = 0; i < 300_000; i++) log.append(one);
  assert.equal(log.length, 300_000);
  assert.equal(log.bytes().toString(), 'x'.repeat(300_000));
  // 300 000 bytes take ceil(300 000 / 64 KiB) = 5 pieces: what was charged is what they hold.
  assert.ok(!budget.take(1024 ** 3 - 4 * PIECE_BYTES), 'the pieces were not charged');
  log.release();
  assert.ok(budget.take(1024 ** 3), 'the pieces were not given back');
});

void test('past the budget an append keeps what fits and says so', () => {
  const budget = new OutputBudget(PIECE_BYTES);
  const log = new ByteLog(budget);
  assert.equal(log.append(Buffer.alloc(PIECE_BYTES - 10, 1)), PIECE_BYTES - 10);
  assert.equal(log.append(Buffer.alloc(100, 2)), 10);
  assert.equal(log.length, PIECE_BYTES);
  log.release();
});

void test('text is cut only between whole UTF-8 characters', () => {
  const euro = Buffer.from('a€'); // 61 e2 82 ac
  assert.equal(utf8Whole(euro), 4);
  assert.equal(utf8Whole(euro.subarray(0, 3)), 1);
  assert.equal(utf8Whole(euro.subarray(0, 2)), 1);
  assert.equal(utf8Whole(Buffer.from('abc')), 3);
  assert.equal(utf8Whole(Buffer.from('😀').subarray(0, 3)), 0);
});
