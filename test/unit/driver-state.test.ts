import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { type Driver, opaque } from '../../src/drivers/driver.js';
import { NamespaceDriver, type NsState } from '../../src/drivers/namespace/driver.js';
import { GvisorDriver } from '../../src/drivers/gvisor/driver.js';
import { MicrovmDriver } from '../../src/drivers/microvm/driver.js';

const opts = {
  runtimeDir: '/nonexistent/realm-test',
  cgroupRoot: 'realm-test',
  kernelDir: '/nonexistent/realm-test',
  sandboxGroup: 65530,
};

void test("a driver's state is its own type: the engine holds drivers only through opaque(), which decodes each state it hands back", async () => {
  const ns = new NamespaceDriver(opts);
  // @ts-expect-error a Driver<NsState> takes only its own states: it is no Driver without opaque()
  const unchecked: Driver = ns;
  assert.ok(unchecked);
  const d: Driver = opaque(ns);
  const state: NsState = { cgroup: 'realm-test/x', stateDir: '/nonexistent/x', uid: 70000 };
  assert.equal(
    ns.decodeState(state),
    state,
    'decoding gives back the same object (what the verbs change is what the engine saves)',
  );
  // A state of another driver, or a damaged record, is refused before the driver does anything.
  const vmState = { cgroup: 'realm-test/x', stateDir: '/nonexistent/x', limits: { memoryBytes: 1, pids: 1, cpus: 1 } };
  assert.throws(
    () => d.exec({ stateDir: '/x' }, { argv: ['true'], env: {}, cwd: '/', stdin: false }),
    /not a namespace sandbox's/,
  );
  await assert.rejects(d.destroy({ cgroup: 5, stateDir: '/x' }), /not a namespace sandbox's/);
  assert.throws(() => new GvisorDriver(opts).decodeState(vmState), /not a gvisor sandbox's/);
  assert.equal(new MicrovmDriver(opts).decodeState(vmState), vmState);
  assert.throws(
    () => new MicrovmDriver(opts).decodeState({ ...vmState, limits: { memoryBytes: '1' } }),
    /not a microvm sandbox's/,
  );
});

void test('a state is decoded once, where the store reads it back; the verbs then take it as it is', async () => {
  let decoded = 0;
  class Counting extends NamespaceDriver {
    override decodeState(raw: Parameters<NamespaceDriver['decodeState']>[0]): NsState {
      decoded++;
      return super.decodeState(raw);
    }
  }
  const d = opaque(new Counting(opts));
  const dir = mkdtempSync(join(tmpdir(), 'realm-store-'));
  const store = new SqliteStore(join(dir, 'state.db'), { decodeState: (_driver, raw) => d.decodeState(raw) });
  try {
    const state: NsState = { cgroup: 'realm-test/x', stateDir: join(dir, 'nonexistent'), uid: 70000 };
    const rec = {
      id: 'sb-1',
      name: 'one',
      driver: 'namespace' as const,
      image: 'host',
      status: 'stopped' as const,
      limits: { memoryBytes: 1, pids: 8, cpus: 1, diskBytes: 1, tmpBytes: 1 },
      network: 'none' as const,
      volumes: [],
      env: {},
      labels: {},
      expiresAt: null,
      createdAt: 1,
      ephemeral: false,
      driverState: state,
    };
    await store.putSandbox(rec);
    const back = await store.getSandbox('sb-1');
    assert.ok(back);
    assert.equal(decoded, 1, 'read back: decoded once');
    assert.equal(d.decodeState(back.driverState), back.driverState);
    await d.signal(back.driverState, 'SIGTERM').catch(() => undefined);
    assert.equal(decoded, 1, 'the verbs do not decode it again');
    // A damaged record is left as read by the store and refused at its first use.
    await store.putSandbox({ ...rec, id: 'sb-2', name: 'two', driverState: { cgroup: 5 } });
    const bad = await store.getSandbox('sb-2');
    assert.ok(bad);
    await assert.rejects(d.destroy(bad.driverState), /not a namespace sandbox's/);
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
