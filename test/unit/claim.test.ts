/**
 * One daemon per data dir and per cgroup root: a second daemon stops at start, naming the live one
 * that holds either (it would otherwise sweep that daemon's sandboxes as its own leftovers); the
 * claim of a dead daemon, or of a pid reused since, is taken over.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { claimDaemon, startTime } from '../../src/daemon/claim.js';

const rootLock = (root: string): string => `/run/realm/cgroup-roots/${encodeURIComponent(root)}.lock`;

void test('a live daemon keeps its data dir and cgroup root; a dead one, or a reused pid, does not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'realm-claim-'));
  mkdirSync('/run/realm/cgroup-roots', { recursive: true });
  const root = `realm-test-claim-${process.pid}`;
  // Another daemon, as far as a claim can tell: a live process of another pid.
  const other = spawn('sleep', ['60'], { stdio: 'ignore' });
  try {
    const pid = other.pid;
    assert.ok(pid);
    const started = startTime(pid);
    assert.ok(started);
    const holder = JSON.stringify({ pid, started, dataDir: '/srv/other', cgroupRoot: root });

    writeFileSync(join(dir, 'daemon.lock'), holder);
    assert.throws(() => claimDaemon(dir, `${root}-free`), new RegExp(`another realm daemon \\(pid ${pid}\\) uses the data dir`));

    rmSync(join(dir, 'daemon.lock'));
    writeFileSync(rootLock(root), holder);
    assert.throws(() => claimDaemon(dir, root), /pid \d+, data dir \/srv\/other\) uses the cgroup root .*REALM_CGROUP_ROOT/);
    assert.equal(existsSync(join(dir, 'daemon.lock')), false, 'a refused start leaves no claim of its own');

    // The same pid, started at another time: the pid was reused; the claim is stale.
    writeFileSync(rootLock(root), JSON.stringify({ pid, started: `${Number(started) + 1}`, dataDir: '/x', cgroupRoot: root }));
    claimDaemon(dir, root).release();

    // The holder dies (kill -9): its claim is taken over, then given back on release.
    writeFileSync(rootLock(root), holder);
    other.kill('SIGKILL');
    await new Promise((r) => other.once('exit', r));
    const claim = claimDaemon(dir, root);
    assert.ok(existsSync(rootLock(root)) && existsSync(join(dir, 'daemon.lock')));
    claim.release();
    assert.equal(existsSync(rootLock(root)), false);
    assert.equal(existsSync(join(dir, 'daemon.lock')), false);
  } finally {
    other.kill('SIGKILL');
    rmSync(rootLock(root), { force: true });
    rmSync(`${rootLock(root)}-free`, { force: true });
    rmSync(rootLock(`${root}-free`), { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
