import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DriverCapabilities } from '../../src/drivers/driver.js';
import { refuseUnservable } from '../../src/engine/capabilities.js';

const all: DriverCapabilities = {
  networkModes: ['none', 'all', 'allowlist'],
  maxVolumes: null,
  perExecMemoryLimit: true,
  perExecCpuLimit: true,
  perExecPidsLimit: true,
  tty: true,
  interactive: true,
  stopStart: true,
  nativePrograms: true,
};
const none: DriverCapabilities = {
  networkModes: ['none'],
  maxVolumes: 2,
  perExecMemoryLimit: false,
  perExecCpuLimit: false,
  perExecPidsLimit: false,
  tty: false,
  interactive: false,
  stopStart: false,
  nativePrograms: false,
};
const sandbox = { memoryBytes: 512 << 20, cpus: 2 };

void test('a request within the capabilities passes; each one past them is DRIVER_UNAVAILABLE naming the capability', () => {
  refuseUnservable('namespace', all, {
    network: 'all',
    volumes: 50,
    tty: true,
    interactive: true,
    stopStart: true,
    exec: { memoryBytes: 64 << 20, cpus: 0.5, pids: 4 },
    sandbox,
  });
  // Limits no tighter than the sandbox's ask for no per-exec capability.
  refuseUnservable('gvisor', none, { network: 'none', volumes: 2, exec: { memoryBytes: 512 << 20, cpus: 2 }, sandbox });
  const cases: [Parameters<typeof refuseUnservable>[2], string][] = [
    [{ network: 'all' }, 'networkModes:all'],
    [{ network: 'allowlist' }, 'networkModes:allowlist'],
    [{ volumes: 3 }, 'maxVolumes'],
    [{ tty: true }, 'tty'],
    [{ interactive: true }, 'interactive'],
    [{ stopStart: true }, 'stopStart'],
    [{ exec: { memoryBytes: 64 << 20 }, sandbox }, 'perExecMemoryLimit'],
    [{ exec: { cpus: 1 }, sandbox }, 'perExecCpuLimit'],
    [{ exec: { pids: 10 }, sandbox }, 'perExecPidsLimit'],
  ];
  for (const [req, cap] of cases) {
    assert.throws(
      () => refuseUnservable('gvisor', none, req),
      (e: Error & { code?: string }) =>
        e.code === 'DRIVER_UNAVAILABLE' && e.message.includes(`(capability ${cap})`) && e.message.startsWith('the gvisor driver'),
      cap,
    );
  }
});
