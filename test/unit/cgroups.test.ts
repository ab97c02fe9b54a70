import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { probeCgroups } from '../../src/drivers/shared/cgroups.js';

const probe = probeCgroups();

void test(
  'a cgroup writes only the limits that changed since it last wrote them',
  { skip: probe.ok ? false : `no writable cgroups here: ${probe.ok ? '' : probe.reason}` },
  async () => {
    if (!probe.ok) return;
    const rel = `realm-test-${process.pid}-limits`;
    const cg = probe.manager.create(rel);
    try {
      // v1 names each controller's mount ("pids=/sys/fs/cgroup/pids"); v2 has one ("unified=…").
      const mounts = probe.manager.describe();
      const file = join(
        probe.manager.version === 1 ? (/pids=(\S+)/.exec(mounts)?.[1] ?? '') : mounts.replace(/^unified=/, ''),
        rel,
        'pids.max',
      );
      const pidsMax = (): string => readFileSync(file, 'utf8').trim();
      cg.setLimits({ memoryBytes: 64 * 1024 ** 2, pids: 100, cpus: 1 });
      assert.equal(pidsMax(), '100');
      // Changed behind its back: the same limits again write nothing, so the change stays…
      writeFileSync(file, '77');
      cg.setLimits({ memoryBytes: 64 * 1024 ** 2, pids: 100, cpus: 1 });
      assert.equal(pidsMax(), '77');
      // …a different limit is written…
      cg.setLimits({ pids: 90 });
      assert.equal(pidsMax(), '90');
      // …and a fresh object for the same cgroup writes everything it is given.
      writeFileSync(file, '77');
      probe.manager.open(rel).setLimits({ pids: 90 });
      assert.equal(pidsMax(), '90');
    } finally {
      await cg.kill();
      cg.remove();
    }
  },
);

void test(
  "a cgroup's CPU share scales its weight under contention, its quota unchanged",
  { skip: probe.ok ? false : `no writable cgroups here: ${probe.ok ? '' : probe.reason}` },
  async () => {
    if (!probe.ok) return;
    const rel = `realm-test-${process.pid}-share`;
    const cg = probe.manager.create(rel);
    try {
      const mounts = probe.manager.describe();
      const v1 = probe.manager.version === 1;
      const dir = join(v1 ? (/cpu=(\S+)/.exec(mounts)?.[1] ?? '') : mounts.replace(/^unified=/, ''), rel);
      const weight = (): number => Number(readFileSync(join(dir, v1 ? 'cpu.shares' : 'cpu.weight'), 'utf8').trim());
      const quota = (): string => readFileSync(join(dir, v1 ? 'cpu.cfs_quota_us' : 'cpu.max'), 'utf8').trim();
      cg.setLimits({ memoryBytes: 64 * 1024 ** 2, pids: 100, cpus: 1 });
      const full = weight();
      const q = quota();
      assert.equal(full, v1 ? 1024 : 100);
      // The same object: the share alone, against the cpus it wrote.
      cg.setLimits({ cpuShare: 1 / 16 });
      assert.equal(weight(), Math.round(full / 16));
      assert.equal(quota(), q);
      // A fresh object (as a driver's update makes): given with the cpus; back to 1.
      probe.manager.open(rel).setLimits({ cpus: 1, cpuShare: 1 });
      assert.equal(weight(), full);
      probe.manager.open(rel).setLimits({ cpus: 1, cpuShare: 1 / 16 });
      assert.equal(weight(), Math.round(full / 16));
    } finally {
      await cg.kill();
      cg.remove();
    }
  },
);

void test(
  "a cgroup's figures read through its files opened once follow what its process uses, and read 0 once it is removed",
  { skip: probe.ok ? false : `no writable cgroups here: ${probe.ok ? '' : probe.reason}` },
  async () => {
    if (!probe.ok) return;
    const rel = `realm-test-${process.pid}-stats`;
    const cg = probe.manager.create(rel);
    const reader = cg.openStats();
    try {
      assert.deepEqual(reader.read(), { cpuNs: 0, memoryPeakBytes: 0, oomKills: 0 });
      // A process joins, then writes 32 MiB and counts a while.
      const child = spawn(
        '/usr/bin/python3',
        ['-c', 'import sys\nsys.stdin.readline()\nb = b"x" * (32 << 20)\nn = 0\nfor i in range(2_000_000): n += i\nprint(n)'],
        { stdio: ['pipe', 'pipe', 'inherit'] },
      );
      const exited = new Promise((r) => child.once('exit', r));
      for (const f of cg.procsFiles()) writeFileSync(f, String(child.pid));
      child.stdin.end('go\n');
      await exited;
      const read = reader.read();
      assert.ok(read.cpuNs > 10_000_000, `cpu ${read.cpuNs} ns`);
      assert.ok(read.memoryPeakBytes >= 32 * 1024 ** 2, `peak ${read.memoryPeakBytes}`);
      assert.deepEqual(read, cg.stats()); // the same counters as a path read, now the process is gone
      cg.remove();
      assert.deepEqual(reader.read(), { cpuNs: 0, memoryPeakBytes: 0, oomKills: 0 });
    } finally {
      reader.close();
      await cg.kill();
      cg.remove();
    }
  },
);
