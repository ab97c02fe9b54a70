/** The event bus's ring and resumes, and the event stream's type and label filters. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EventBus } from '../../src/engine/events.js';
import { eventFilter } from '../../src/daemon/routes/events.js';
import { RealmError } from '../../src/util/errors.js';

void describe('event bus', () => {
  void it('keeps the last N events; since() says how many after an id are gone', () => {
    const bus = new EventBus(3);
    for (let i = 0; i < 5; i++) bus.emit({ type: 'sandbox.created', owner: undefined, data: { i } });
    assert.equal(bus.lastId, 5);
    assert.deepEqual(
      bus.since(3).events.map((e) => e.id),
      [4, 5],
    );
    assert.equal(bus.since(3).missed, 0);
    // 1 is gone from a ring of 3 (3, 4, 5 kept): after 1, event 2 was missed.
    assert.deepEqual(bus.since(1), { events: bus.since(2).events, missed: 1 });
    assert.equal(bus.since(0).missed, 2);
    assert.equal(bus.since(9).missed, -1, 'an id newer than any: of an earlier life of the daemon');
    assert.equal(bus.since(5).events.length, 0);
  });

  void it('an owner left out is root; null is everyone; a failing listener stops no other', () => {
    const bus = new EventBus();
    const got: (string | null)[] = [];
    bus.subscribe(() => {
      throw new Error('boom');
    });
    const off = bus.subscribe((e) => got.push(e.owner));
    bus.emit({ type: 'a', owner: undefined });
    bus.emit({ type: 'node.joined', owner: null });
    bus.emit({ type: 'a', owner: 'uid:7' });
    off();
    bus.emit({ type: 'a', owner: 'uid:8' });
    assert.deepEqual(got, ['uid:0', null, 'uid:7']);
  });
});

void describe('event filter', () => {
  const e = (type: string, labels?: Record<string, string>) => ({
    id: 1,
    type,
    time: '',
    ids: {},
    data: {},
    ...(labels ? { labels } : {}),
  });

  void it('matches exact types, X.* patterns, a family by its bare name, comma lists; labels must all hold', () => {
    const f = eventFilter(['sandbox.*,run.finished', 'node'], []);
    assert.ok(f(e('sandbox.oom')));
    assert.ok(f(e('run.finished')));
    assert.ok(f(e('node.left')));
    assert.ok(!f(e('job.running')));
    assert.ok(!f(e('sandboxes.x')));
    assert.ok(eventFilter([], [])(e('anything')));
    const l = eventFilter([], ['team=a', 'env=prod']);
    assert.ok(l(e('sandbox.created', { team: 'a', env: 'prod', x: 'y' })));
    assert.ok(!l(e('sandbox.created', { team: 'a' })));
    assert.ok(!l(e('node.joined')));
  });

  void it('refuses what is not a type pattern or a k=v label', () => {
    assert.throws(() => eventFilter(['$x'], []), RealmError);
    assert.throws(() => eventFilter([], ['novalue']), RealmError);
    assert.throws(() => eventFilter([], ['=v']), RealmError);
  });
});
