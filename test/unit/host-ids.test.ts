/** Host ids: each sandbox its own pair from the operator's range, given back on destroy. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HostIds, LEGACY_IDS, parseUidRange } from '../../src/engine/host-ids.js';
import { RealmError } from '../../src/util/errors.js';

const code =
  (c: string) =>
  (e: unknown): boolean =>
    e instanceof RealmError && e.code === c;

void describe('host ids', () => {
  void it('parses FIRST:COUNT and refuses ranges that would hand out system, nobody or huge ids', () => {
    assert.deepEqual(parseUidRange('1879048192:65536'), { first: 1879048192, count: 65536 });
    for (const bad of ['', '100000', '500:100', '100000:3', '100000:7', '2147483000:65536', '60000:10000', 'a:b']) {
      assert.throws(() => parseUidRange(bad), code('INVALID_REQUEST'), bad);
    }
  });

  void it("the first pair is realm's own; every holder gets a pair of its own, the VMM's the second", () => {
    const ids = new HostIds({ first: 100000, count: 8 });
    assert.equal(ids.storage, 100000);
    assert.equal(ids.group, 100001);
    assert.deepEqual(ids.take('a'), { uid: 100002, vmmUid: 100003 });
    assert.deepEqual(ids.take('a'), { uid: 100002, vmmUid: 100003 }, 'a holder keeps its pair');
    assert.deepEqual(ids.take('b'), { uid: 100004, vmmUid: 100005 });
    assert.deepEqual(ids.take('c'), { uid: 100006, vmmUid: 100007 });
    assert.throws(() => ids.take('d'), code('CAPACITY_EXCEEDED'));
    ids.give('b');
    assert.equal(ids.uidOf('b'), undefined);
    assert.deepEqual(ids.take('d'), { uid: 100004, vmmUid: 100005 });
    assert.deepEqual(ids.holders().sort(), ['a', 'c', 'd']);
  });

  void it('an id given back is the last to be taken again', () => {
    const ids = new HostIds({ first: 100000, count: 10 });
    const a = ids.take('a').uid;
    ids.give('a');
    assert.notEqual(ids.take('b').uid, a);
    assert.notEqual(ids.take('c').uid, a);
    assert.notEqual(ids.take('d').uid, a);
    assert.equal(ids.take('e').uid, a, 'the range came round');
  });

  void it('adopts what the store says (after a restart); ids outside the range stay as they are', () => {
    const ids = new HostIds({ first: 100000, count: 8 });
    ids.adopt('old', 100004);
    ids.adopt('legacy', undefined);
    ids.adopt('elsewhere', 5000);
    assert.deepEqual(ids.holders(), ['old']);
    assert.equal(ids.take('new').uid, 100002);
    assert.equal(ids.take('newer').uid, 100006, 'an adopted id is not handed out');
    assert.deepEqual(HostIds.of(undefined), LEGACY_IDS);
    assert.deepEqual(HostIds.of(100004), { uid: 100004, vmmUid: 100005 });
  });
});
