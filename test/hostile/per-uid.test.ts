/**
 * Per-user kernel limits across sandboxes. The kernel counts some things per host uid: inotify
 * instances (fs.inotify.max_user_instances) and POSIX message queue bytes (RLIMIT_MSGQUEUE).
 * When every sandbox ran as one host uid, one sandbox that used them up made both fail in every
 * other sandbox. Each sandbox now runs as a host uid of its own: one that exhausts its share
 * leaves the others theirs, and that uid is given back when it is destroyed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox } from '@realm/sdk';
import { daemonHooks, hostUidOf, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { GVISOR, PY_ATTEMPT, assertHealthy, pyGuard, record, secs } from './common.js';

const skip = await testDriverSkipReason();
let t: TestDaemon;
daemonHooks((d) => (t = d), {}, skip);

/** Python: make inotify instances and message queues until the kernel refuses; how many, and why. */
const MAKE = `import resource
libc.inotify_init1.restype = ctypes.c_int
libc.mq_open.restype = ctypes.c_int
libc.mq_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # so the fd table is not what runs out
def count(make, most):
    n = 0
    while n < most:
        if make(n) < 0:
            return '%d %s' % (n, errno.errorcode.get(ctypes.get_errno(), '?'))
        n += 1
    return '%d none' % n
TAG = '%d-%d' % (os.getpid(), time.monotonic_ns())
`;

/** The program that uses everything up and holds it until its sandbox goes. */
const HOG = `${PY_ATTEMPT}import time
${MAKE}
R['inotify'] = count(lambda n: libc.inotify_init1(0), 4096)
R['mqueue'] = count(lambda n: libc.mq_open(('/hog-%s-%d' % (TAG, n)).encode(), os.O_CREAT | os.O_RDWR, 0o600, None), 256)
R['inotify again'] = count(lambda n: libc.inotify_init1(0), 1)
R['mqueue again'] = count(lambda n: libc.mq_open(('/again-%s' % TAG).encode(), os.O_CREAT | os.O_RDWR, 0o600, None), 1)
with open('/tmp/held.tmp', 'w') as f:
    f.write(json.dumps(R))
os.rename('/tmp/held.tmp', '/tmp/held')
time.sleep(600)
`;

/** The program of a bystander: one of each. */
const ONE = `${PY_ATTEMPT}import time
${MAKE}
R['inotify'] = count(lambda n: libc.inotify_init1(0), 1)
R['mqueue'] = count(lambda n: libc.mq_open(('/one-%s' % TAG).encode(), os.O_CREAT | os.O_RDWR, 0o600, None), 1)
done()
`;

void test(
  'a sandbox that uses up its inotify instances and message queue bytes leaves other sandboxes theirs',
  { skip },
  async () => {
    const hog = await Sandbox.create({ memory: '256m' }, t.client);
    const other = await Sandbox.create({ memory: '256m' }, t.client);
    try {
      assert.notEqual(hostUidOf(t, hog.id), hostUidOf(t, other.id), 'two sandboxes share a host uid');
      // It holds what it made until its sandbox is destroyed (below).
      const holding = hog
        .exec(['/usr/bin/python3', '-c', `${pyGuard(t.dataDir)}${HOG}`], { timeout: secs(600) })
        .catch(() => undefined);
      let held = '';
      for (let i = 0; i < 120 * 5 && !held; i++) {
        held = (await hog.exec('cat /tmp/held 2>/dev/null || true')).stdout.trim();
        if (!held) await sleep(200);
      }
      assert.ok(held, 'the hog never finished using things up');
      // The control: the hog really hit the kernel's per-user limits (not a cap of its own making).
      // gVisor's own kernel counts neither per user (each sandbox has a kernel of its own, so there
      // is nothing to share): there the hog stops at its own caps.
      const hogged = JSON.parse(held) as Record<string, string>;
      if (GVISOR) {
        assert.match(hogged.inotify ?? '', /^(\d+ EMFILE|4096 none)$/, held);
        assert.match(hogged.mqueue ?? '', /^(\d+ EMFILE|256 none)$/, held);
      } else {
        assert.match(hogged.inotify ?? '', /^\d+ EMFILE$/, held);
        assert.match(hogged['inotify again'] ?? '', /^0 EMFILE$/, held);
        assert.match(hogged.mqueue ?? '', /^\d+ EMFILE$/, held);
        assert.match(hogged['mqueue again'] ?? '', /^0 EMFILE$/, held);
      }
      const r = await other.exec(['/usr/bin/python3', '-c', `${pyGuard(t.dataDir)}${ONE}`], { timeout: secs(60) });
      const got = record(r);
      // The other sandbox gets one of each, as if the hog were not there.
      assert.equal(got.inotify, '1 none', `another sandbox could not make an inotify instance: ${JSON.stringify(got)}`);
      assert.equal(got.mqueue, '1 none', `another sandbox could not make a message queue: ${JSON.stringify(got)}`);
      await hog.destroy();
      await holding;
    } finally {
      await hog.destroy().catch(() => undefined);
      await other.destroy().catch(() => undefined);
    }
    await assertHealthy(t);
  },
);

void test("a destroyed sandbox's host uid goes back to the range; live sandboxes never share one", { skip }, async () => {
  const made: Sandbox[] = [];
  try {
    for (let i = 0; i < 4; i++) made.push(await Sandbox.create({ memory: '128m' }, t.client));
    const uids = made.map((s) => hostUidOf(t, s.id));
    assert.equal(new Set(uids).size, uids.length, `live sandboxes share host uids: ${uids.join(', ')}`);
    const ids = t.daemon.engine.hostIds;
    assert.deepEqual(
      made.map((s) => ids.uidOf(s.id)),
      uids,
      'the daemon holds other uids than the records say',
    );
    const gone = made.splice(0, 2);
    for (const s of gone) await s.destroy();
    assert.deepEqual(
      gone.map((s) => ids.uidOf(s.id)),
      [undefined, undefined],
      'destroyed sandboxes kept their host uids',
    );
  } finally {
    for (const s of made) await s.destroy().catch(() => undefined);
  }
});
