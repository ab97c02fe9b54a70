/**
 * What runs inside this process's microVMs, asked of each VM's agent over the connection its
 * daemon's driver holds (QEMU serves one client per socket, so a test cannot open its own).
 * The drivers are found by watching `MicrovmDriver`s come and go in this process; shipped code
 * keeps no registry for tests.
 */
import type { AgentConnection, GuestUsage } from '../../src/drivers/microvm/agent.js';
import { MicrovmDriver } from '../../src/drivers/microvm/driver.js';

const live = new Set<MicrovmDriver>();
const proto = MicrovmDriver.prototype;
const fingerprint = Object.getOwnPropertyDescriptor(proto, 'fingerprint')?.value as (
  this: MicrovmDriver,
) => ReturnType<MicrovmDriver['fingerprint']>;
const close = Object.getOwnPropertyDescriptor(proto, 'close')?.value as (this: MicrovmDriver) => Promise<void>;
// Every daemon fingerprints its drivers as it starts, and closes them as it stops.
proto.fingerprint = function (this: MicrovmDriver) {
  live.add(this);
  return fingerprint.call(this);
};
proto.close = function (this: MicrovmDriver) {
  live.delete(this);
  return close.call(this);
};

/** The agent connection a live driver of this process holds for the VM whose state dir this is. */
function connection(stateDir: string): AgentConnection | undefined {
  for (const d of live) {
    const c = (d as unknown as { conns: Map<string, AgentConnection> }).conns.get(stateDir);
    if (c?.isOpen) return c;
  }
  return undefined;
}

/** What runs in the VM whose state dir this is (undefined when no VM of this process runs there). */
export function guestUsage(stateDir: string): Promise<GuestUsage | undefined> {
  return connection(stateDir)?.usage() ?? Promise.resolve(undefined);
}
