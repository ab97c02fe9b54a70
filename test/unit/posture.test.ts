/** `realm doctor` warns about each thing the operator opened beyond realm's closed defaults. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Posture, warnings } from '../../src/daemon/posture.js';

const closed: Posture = {
  host: '127.0.0.1',
  anonymous: [],
  allowPrivate: [],
  imageDirs: [],
  hostNames: [],
  corsOrigins: [],
  uidOverlaps: [],
};

void describe('posture warnings', () => {
  void it('the closed defaults warn of nothing', () => {
    assert.deepEqual(warnings(closed), []);
  });

  void it('each opened door has its warning, naming what it opens', () => {
    const cases: [Partial<Posture>, RegExp][] = [
      [{ host: '0.0.0.0' }, /listens on 0\.0\.0\.0, beyond loopback/],
      [{ anonymous: ['runs'] }, /without a token on TCP: runs/],
      [{ allowPrivate: ['10.1.0.0/16'] }, /allow-private opens 10\.1\.0\.0\/16/],
      [{ imageDirs: ['/srv/roots'] }, /host directories are images .*\/srv\/roots/],
      [{ corsOrigins: ['https://app.example'] }, /pages of https:\/\/app\.example/],
      [{ hostNames: ['realm.internal'] }, /host names realm\.internal/],
      [{ uidOverlaps: ['user alice (1879048200) in /etc/passwd'] }, /uid range .*alice/],
      [{ metricsHost: '0.0.0.0' }, /metrics listener .* on 0\.0\.0\.0, beyond loopback, without a token/],
      [{ metricsPublic: true }, /GET \/metrics answers without a token/],
    ];
    for (const [open, want] of cases) {
      const w = warnings({ ...closed, ...open });
      assert.equal(w.length, 1, JSON.stringify(open));
      assert.match(w.join('\n'), want);
    }
    assert.equal(
      warnings({ host: '::1', anonymous: [], allowPrivate: [], imageDirs: [], hostNames: [], corsOrigins: [], uidOverlaps: [] })
        .length,
      0,
      'IPv6 loopback is loopback',
    );
  });
});
