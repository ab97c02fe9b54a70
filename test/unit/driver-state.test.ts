import assert from 'node:assert/strict';
import { test } from 'node:test';
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
