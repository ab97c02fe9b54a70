/**
 * Hostile programs against the limits: fork bombs, memory bombs, runaway daemons, output floods,
 * disk fill. Each runs inside a real sandbox behind a guard; after each the daemon must answer and
 * nothing of the sandbox may be left.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Sandbox, run, type ExecResult } from '@realm/sdk';
import { A_SANDBOX_UID, daemonHooks, testDriverSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { hostPids } from '../../src/drivers/gvisor/driver.js';
import { VMM_PIDS } from '../../src/drivers/microvm/driver.js';
import {
  GVISOR,
  MICROVM,
  SLOW,
  assertContained,
  assertHealthy,
  assertNoGuard,
  cGuard,
  maxGvisorUserProcs,
  maxMicrovmPidsPeak,
  maxSandboxPids,
  nonce,
  procsWithArg,
  pyGuard,
  record,
  secs,
  shGuard,
} from './common.js';

const skip = await testDriverSkipReason();
/**
 * The most host tasks a sandbox's cgroup may hold for a pids limit (see watched()): the limit
 * itself on namespace; on gvisor hostPids() (room for the sentry's threads); on microvm the VMM's
 * fixed bound (QEMU's and virtiofsd's threads: the guest's processes are no host tasks at all).
 */
const HOST_PIDS = (pids: number): number => (GVISOR ? hostPids(pids) : MICROVM ? VMM_PIDS : pids);
let t: TestDaemon;
daemonHooks((d) => (t = d), {}, skip);

/**
 * Run `work` while sampling the daemon's health, the host tasks of each of this daemon's sandbox
 * cgroups (`maxPids`) and the processes the sandbox's pids limit counts (`maxInside`): the same
 * tasks on namespace; on gvisor the sandbox user's processes in gVisor's kernel, while the host
 * cgroup also holds the sentry's own threads (bounded there by hostPids()); on microvm the peak
 * of the guest's sandbox cgroup, while the host cgroup holds the VMM only.
 */
async function watched<T>(work: Promise<T>): Promise<{ result: T; maxPids: number; maxInside: number; healthMs: number[] }> {
  let maxPids = 0;
  let maxInside = 0;
  const healthMs: number[] = [];
  let finished = false;
  const sampler = (async () => {
    while (!finished) {
      const host = maxSandboxPids(t.cgroupRoot);
      maxPids = Math.max(maxPids, host);
      maxInside = Math.max(maxInside, GVISOR ? await maxGvisorUserProcs(t) : MICROVM ? await maxMicrovmPidsPeak(t) : host);
      const t0 = Date.now();
      const res = await fetch(`${t.url}/v1/health`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200);
      healthMs.push(Date.now() - t0);
      await sleep(50);
    }
  })();
  try {
    const result = await work;
    if (process.env.HOSTILE_DEBUG) console.error({ maxPids, maxInside, maxHealthMs: Math.max(...healthMs) });
    return { result, maxPids, maxInside, healthMs };
  } finally {
    finished = true;
    await sampler;
  }
}

void test('guards: every guard trips on the host and holds inside a sandbox', { skip }, async () => {
  // On the host the path checks alone trip it, whatever uid runs it.
  assert.ok(existsSync('/var/lib') || existsSync('/root'));
  assert.ok(existsSync(t.dataDir));
  const dir = mkdtempSync(join(tmpdir(), 'realm-guard-'));
  try {
    for (const uid of [process.getuid?.() ?? 0, A_SANDBOX_UID]) {
      const py = spawnSync('/usr/bin/python3', ['-c', `${pyGuard(t.dataDir)}print('PASSED')`], {
        uid,
        gid: uid,
        encoding: 'utf8',
        cwd: '/',
      });
      assert.equal(py.stdout.trim(), 'GUARD');
      assert.equal(py.status, 99);
      const sh = spawnSync('/bin/sh', ['-c', `${shGuard(t.dataDir)}echo PASSED`], { uid, gid: uid, encoding: 'utf8', cwd: '/' });
      assert.equal(sh.stdout.trim(), 'GUARD');
      assert.equal(sh.status, 99);
    }
    writeFileSync(join(dir, 'g.c'), `${cGuard(t.dataDir)}int main(void) { guard(); puts("PASSED"); return 0; }\n`);
    execFileSync('/usr/bin/gcc', ['-o', join(dir, 'g'), join(dir, 'g.c')]);
    const c = spawnSync(join(dir, 'g'), { encoding: 'utf8' });
    assert.equal(c.stdout.trim(), 'GUARD');
    assert.equal(c.status, 99);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Inside, all three let the program go on.
  const py = await run({ language: 'python', code: `${pyGuard(t.dataDir)}print('PASSED')` }, t.client);
  const sh = await run({ language: 'bash', code: `${shGuard(t.dataDir)}echo PASSED` }, t.client);
  const c = await run(
    { language: 'c', code: `${cGuard(t.dataDir)}int main(void) { guard(); puts("PASSED"); return 0; }\n` },
    t.client,
  );
  for (const r of [py, sh, c]) {
    assert.equal(r.stdout.trim(), 'PASSED', r.stdout + r.stderr);
    assert.equal(r.verdict, 'ok');
  }
  await assertContained(t);
});

void test('fork bomb in C: the pids limit holds, the run times out, the host keeps working', { skip }, async () => {
  const code = `${cGuard(t.dataDir)}int main(void) { guard(); for (;;) fork(); }\n`;
  const {
    result: r,
    maxPids,
    maxInside,
    healthMs,
  } = await watched(
    // Room in memory: every fork refused at the pids limit leaves kernel memory (the half-made
    // task, freed after an RCU grace period) charged to the sandbox — 30-45 MiB at once here, more
    // when a loaded host stretches the grace periods, and once past the default 256m the kernel
    // OOM-killed the bomb before its timeout. This case is about pids (namespace: the host kernel's
    // accounting; gVisor and a microVM's guest keep theirs inside).
    run({ language: 'c', code, pids: 32, timeout: secs(3), ...(GVISOR || MICROVM ? {} : { memory: '1g' }) }, t.client),
  );
  assertNoGuard(r);
  assert.equal(r.compile?.verdict, 'ok', r.compile?.stderr);
  assert.equal(r.verdict, 'timeout');
  assert.ok(r.wallMs < 8000 * SLOW, `the run took ${r.wallMs} ms`);
  assert.ok(maxInside <= 32, `the sandbox reached ${maxInside} processes with pids=32`);
  assert.ok(maxInside >= 16, `the bomb never got going (${maxInside} processes)`);
  // The host side: the sandbox's cgroup never held more than its host bound (namespace: the
  // limit itself; gvisor: hostPids(), room for the sentry's threads; see watched()).
  assert.ok(maxPids <= HOST_PIDS(32), `the sandbox's cgroup reached ${maxPids} host tasks with pids=32`);
  assert.ok(Math.max(...healthMs) < 3000, `the daemon answered slowly during the bomb: ${Math.max(...healthMs)} ms`);
  assert.equal(spawnSync('/bin/true').status, 0, 'the host cannot start processes');
  await assertContained(t);
});

void test('fork bomb in bash: bounded by pids, ends, the host keeps working', { skip }, async () => {
  const code = `${shGuard(t.dataDir)}bomb() { bomb | bomb & }; bomb; sleep 2; echo survived\n`;
  const {
    result: r,
    maxPids,
    maxInside,
  } = await watched(run({ language: 'bash', code, pids: 24, timeout: secs(4), output: '16k' }, t.client));
  assertNoGuard(r);
  assert.ok(['ok', 'runtime-error', 'timeout', 'output-limit'].includes(r.verdict), r.verdict);
  assert.ok(r.wallMs < 9000 * SLOW, `the run took ${r.wallMs} ms`);
  assert.ok(maxInside <= 24, `the sandbox reached ${maxInside} processes with pids=24`);
  assert.ok(maxInside >= 12, `the bomb never got going (${maxInside} processes)`);
  assert.ok(maxPids <= HOST_PIDS(24), `the sandbox's cgroup reached ${maxPids} host tasks with pids=24`);
  assert.equal(spawnSync('/bin/true').status, 0);
  await assertContained(t);
});

void test('memory bomb: one process past the limit gets verdict oom', { skip }, async () => {
  const code = `${pyGuard(t.dataDir)}chunks = []
while True:
    chunks.append(b'\\x01' * (8 << 20))
`;
  const viaRun = await run({ language: 'python', code, memory: '64m', timeout: '20s' }, t.client);
  // gVisor's memory is one host process (the sentry) in the sandbox's cgroup and it has no limit
  // of its own per exec: the driver refuses an exec limit below the sandbox's rather than ignore
  // it, and the bomb meets the sandbox's own 64m limit instead.
  if (GVISOR) {
    const big = await Sandbox.create({ memory: '256m' }, t.client);
    try {
      await assert.rejects(
        big.exec(['/usr/bin/python3', '-c', code], { memory: '64m', timeout: '20s' }),
        (e: Error & { code?: string }) => e.code === 'DRIVER_UNAVAILABLE' && /per-exec memory limit/.test(e.message),
      );
      assert.equal((await big.exec('echo alive', { timeout: '10s' })).stdout, 'alive\n');
    } finally {
      await big.destroy().catch(() => undefined);
    }
  }
  const sb = await Sandbox.create({ memory: GVISOR ? '64m' : '256m' }, t.client);
  try {
    // An exec's own memory limit holds below its sandbox's (on gvisor: the sandbox's limit, as above).
    const viaExec = await sb.exec(['/usr/bin/python3', '-c', code], { ...(GVISOR ? {} : { memory: '64m' }), timeout: '20s' });
    for (const [via, r] of [
      ['one-shot run', viaRun],
      ['sandbox exec', viaExec],
    ] as const) {
      assertNoGuard(r);
      assert.equal(r.verdict, 'oom', `${via}: ${r.verdict} ${r.stderr.slice(-500)}`);
      assert.ok(r.memoryBytes <= 65 * 1024 ** 2, `${via}: peak ${r.memoryBytes} bytes with a 64m limit`);
    }
    // On gvisor the OOM kill took the sentry, and with it the whole sandbox: nothing to ask.
    if (!GVISOR) assert.equal((await sb.exec('echo alive', { timeout: '10s' })).stdout, 'alive\n');
  } finally {
    await sb.destroy().catch(() => undefined);
  }
  await assertContained(t);
});

void test('memory bomb spread over forked children: verdict oom, limit counts all of them', { skip }, async () => {
  const code = `${pyGuard(t.dataDir)}import time
kids = []
for i in range(8):
    pid = os.fork()
    if pid == 0:
        hold = b'\\x02' * (16 << 20)
        time.sleep(1.5)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.waitpid(k, 0)
print('parent done', flush=True)
`;
  const r = await run({ language: 'python', code, memory: '64m', timeout: '20s' }, t.client);
  assertNoGuard(r);
  assert.equal(r.verdict, 'oom', `${r.verdict} ${r.stdout} ${r.stderr.slice(-500)}`);
  assert.ok(r.memoryBytes <= 65 * 1024 ** 2, `peak ${r.memoryBytes} bytes with a 64m limit`);
  await assertContained(t);
});

/** Python that double-forks, setsids and execs `n` marked children per kind, then loops or exits. */
function daemonizer(marker: string, thenLoop: boolean): string {
  return `${pyGuard(t.dataDir)}import signal
MARK = ${JSON.stringify(marker)}
def daemonize(code, keep_stdio):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            if not keep_stdio:
                fd = os.open('/dev/null', os.O_RDWR)
                for i in (0, 1, 2):
                    os.dup2(fd, i)
            os.execv('/usr/bin/python3', ['python3', '-c', code, MARK])
        os._exit(0)
    os.wait()
daemonize('while True: pass', ${thenLoop ? 'True' : 'False'})
daemonize('import time\\nwhile True: time.sleep(1)', False)
daemonize('import signal\\nfor s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT): signal.signal(s, signal.SIG_IGN)\\nwhile True: pass', False)
print('daemons started', flush=True)
${thenLoop ? 'while True: pass' : ''}
`;
}

void test('infinite loop with setsid daemons (one-shot run): timeout, then every process is gone', { skip }, async () => {
  const marker = `hostile-${nonce()}`;
  let seen = 0;
  let done = false;
  // On gvisor the scan for the daemons is a python exec'd inside the sandbox, which shares the
  // sandbox's one cpu with three busy loops: the run lasts long enough for it to finish once.
  const pending = run({ language: 'python', code: daemonizer(marker, true), timeout: secs(GVISOR ? 5 : 2) }, t.client).finally(
    () => (done = true),
  );
  // procsWithArg: host processes, and on gvisor also those inside gVisor's kernel (not host processes).
  while (!done) {
    seen = Math.max(seen, (await procsWithArg(t, marker)).length);
    await sleep(50);
  }
  const r = await pending;
  assertNoGuard(r);
  assert.match(r.stdout, /daemons started/);
  assert.equal(r.verdict, 'timeout');
  assert.ok(r.wallMs < (GVISOR ? 9000 : 6000) * SLOW, `the run took ${r.wallMs} ms`);
  assert.equal(seen, 3, 'the three daemons should have been running during the run');
  await t.daemon.engine.settled();
  assert.ok(await waitForNone(marker), `daemons survived: ${(await procsWithArg(t, marker)).join(', ')}`);
  await assertContained(t);
});

/** Wait up to 3 s (scaled by SLOW) until no process carries `marker` (host or, on gvisor and microvm, inside a sandbox). */
async function waitForNone(marker: string): Promise<boolean> {
  for (const end = Date.now() + 3000 * SLOW; ;) {
    if ((await procsWithArg(t, marker)).length === 0) return true;
    if (Date.now() > end) return false;
    await sleep(50);
  }
}

void test(
  'setsid daemons in a sandbox: a timed-out exec loses all its daemons; survivors of a clean exec die on destroy',
  { skip },
  async () => {
    const sb = await Sandbox.create({ pids: 64, memory: '256m' }, t.client);
    try {
      const killed = `hostile-${nonce()}`;
      const r1 = await sb.exec(['/usr/bin/python3', '-c', daemonizer(killed, true)], { timeout: secs(2) });
      assertNoGuard(r1);
      assert.equal(r1.verdict, 'timeout');
      assert.ok(
        await waitForNone(killed),
        `daemons of the timed-out exec survived: ${(await procsWithArg(t, killed)).join(', ')}`,
      );

      const kept = `hostile-${nonce()}`;
      const r2 = await sb.exec(['/usr/bin/python3', '-c', daemonizer(kept, false)], { timeout: '10s' });
      assertNoGuard(r2);
      assert.equal(r2.verdict, 'ok', r2.stderr);
      assert.equal((await procsWithArg(t, kept)).length, 3, 'background processes of a finished exec live on until destroy');
      const alive = await sb.exec('echo alive', { timeout: '10s' });
      assert.equal(alive.stdout, 'alive\n');
      await sb.destroy();
      // Gone from the host, and (gvisor) no sandbox of this daemon holds them; assertContained
      // below also proves no runsc process of the sandbox is left.
      assert.deepEqual(await procsWithArg(t, kept), [], 'destroy left daemons running');
    } finally {
      await sb.destroy().catch(() => undefined);
    }
    await assertContained(t);
  },
);

function outputBytes(r: ExecResult): number {
  return Buffer.byteLength(r.stdout) + Buffer.byteLength(r.stderr);
}

void test('output flood on stdout and stderr: verdict output-limit, output cut at the limit', { skip }, async () => {
  const code = `${pyGuard(t.dataDir)}chunk = b'A' * 65536
while True:
    os.write(1, chunk)
    os.write(2, chunk)
`;
  const viaRun = await run({ language: 'python', code, output: '64k', timeout: '30s' }, t.client);
  const sb = await Sandbox.create({ memory: '256m' }, t.client);
  try {
    const viaExec = await sb.exec(['/usr/bin/python3', '-c', code], { output: '64k', timeout: '30s' });
    for (const [via, r] of [
      ['one-shot run', viaRun],
      ['sandbox exec', viaExec],
    ] as const) {
      assertNoGuard(r);
      assert.equal(r.verdict, 'output-limit', via);
      assert.ok(outputBytes(r) <= 64 * 1024, `${via}: kept ${outputBytes(r)} bytes with a 64k limit`);
      assert.ok(outputBytes(r) >= 32 * 1024, `${via}: kept only ${outputBytes(r)} bytes`);
      assert.match(r.stdout, /^A+$/, via);
      assert.ok(r.wallMs < 10_000 * SLOW, `${via}: the flood ran ${r.wallMs} ms`);
    }
  } finally {
    await sb.destroy().catch(() => undefined);
  }
  await assertContained(t);
});

void test('output flood from many processes at once: cut at the limit, all flooders killed', { skip }, async () => {
  const marker = `hostile-${nonce()}`;
  const code = `${pyGuard(t.dataDir)}for i in range(6):
    if os.fork() == 0:
        os.execv('/usr/bin/python3', ['python3', '-c', 'import os\\nwhile True: os.write(1 + %d %% 2, b"B" * 4096)' % i, ${JSON.stringify(marker)}])
while True:
    os.write(1, b'C' * 4096)
`;
  const r = await run({ language: 'python', code, output: '100k', timeout: '30s' }, t.client);
  assertNoGuard(r);
  assert.equal(r.verdict, 'output-limit');
  assert.ok(outputBytes(r) <= 100 * 1024, `kept ${outputBytes(r)} bytes with a 100k limit`);
  assert.ok(r.wallMs < 10_000 * SLOW, `the flood ran ${r.wallMs} ms`);
  await t.daemon.engine.settled();
  assert.ok(await waitForNone(marker), 'flooders survived');
  await assertContained(t);
});

void test(
  'disk fill: /home/user, /tmp and /dev/shm stop at their size with ENOSPC; the data dir takes no more than the disk limit',
  { skip },
  async () => {
    const MiB = 1024 ** 2;
    // What the sandbox may take of the host's disk lies under the daemon's data dir (its writable
    // layer, its disk image, its volumes): measured there, on the data dir's filesystem alone
    // (`du -x`: a tmpfs mounted inside is memory, not disk). The disk's free space would not do:
    // another test writing to the same disk meanwhile would count as lost.
    const dataDirUsed = (): number => Number(execFileSync('du', ['-sxB1', t.dataDir], { encoding: 'utf8' }).split(/\s/)[0]);
    const usedBefore = dataDirUsed();
    const sb = await Sandbox.create({ disk: '8m', tmp: '8m', memory: '256m' }, t.client);
    try {
      const code = `${pyGuard(t.dataDir)}import errno, json
res = {}
for path in ['/home/user/fill', '/tmp/fill', '/dev/shm/fill']:
    n, err = 0, None
    try:
        with open(path, 'wb') as f:
            chunk = b'\\xff' * (1 << 20)
            while n < (64 << 20):
                f.write(chunk)
                f.flush()
                n += len(chunk)
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    res[path] = [n, err]
print(json.dumps(res), flush=True)
`;
      const r = await sb.exec(['/usr/bin/python3', '-c', code], { timeout: '30s' });
      const res = record(r) as unknown as Record<string, [number, string | null]>;
      for (const path of ['/home/user/fill', '/tmp/fill', '/dev/shm/fill']) {
        const [written, err] = res[path] ?? [NaN, null];
        assert.equal(err, 'ENOSPC', `${path}: ${JSON.stringify(res[path])}`);
        assert.ok(written <= 8 * MiB, `${path}: wrote ${written} bytes past an 8m limit`);
      }
      if (MICROVM) {
        // The home directory is the VM's ext4 disk: on the host one sparse image file of the disk
        // limit, which the fill took (nearly) all of; /tmp and /dev/shm are the guest's memory.
        const img = statSync(join(t.dataDir, 'sandboxes', sb.id, 'home.img'));
        assert.ok(img.size <= 8 * MiB, `the home disk image is ${img.size} bytes`);
        assert.ok(img.blocks * 512 <= 8 * MiB + 64 * 1024, `the home disk image holds ${img.blocks * 512} bytes`);
        assert.ok(img.blocks * 512 > 7 * MiB, `the home disk image should be full (holds ${img.blocks * 512} bytes)`);
      } else {
        // The host sees the writable layer as a full 8 MiB tmpfs, not as files on its disk.
        const rw = statfsSync(join(t.dataDir, 'sandboxes', sb.id, 'rw'));
        assert.ok(rw.blocks * rw.bsize <= 8 * MiB, `writable layer is ${rw.blocks * rw.bsize} bytes`);
        assert.ok(rw.bfree * rw.bsize < MiB, 'the writable layer should be full');
      }
      // The home disk's 8m (a microVM's image file) and the daemon's own few records, no more.
      const grown = dataDirUsed() - usedBefore;
      assert.ok(grown < 12 * MiB, `the data dir grew by ${(grown / MiB).toFixed(1)} MiB`);
      await assertHealthy(t);
      // The sandbox recovers once the files are gone.
      const again = await sb.exec(
        'rm -f /home/user/fill /tmp/fill /dev/shm/fill && echo ok > /home/user/after && cat /home/user/after',
        { timeout: '10s' },
      );
      assert.equal(again.stdout, 'ok\n', again.stderr);
    } finally {
      await sb.destroy().catch(() => undefined);
    }
    // A one-shot run is held to its `disk` too.
    const r = await run(
      {
        language: 'python',
        disk: '4m',
        code: `${pyGuard(t.dataDir)}import errno
try:
    with open('/home/user/big', 'wb') as f:
        for _ in range(64):
            f.write(b'z' * (1 << 20))
            f.flush()
    print('WROTE ALL')
except OSError as e:
    print(errno.errorcode[e.errno])
`,
      },
      t.client,
    );
    assertNoGuard(r);
    assert.equal(r.stdout.trim(), 'ENOSPC');
    await assertContained(t);
  },
);
