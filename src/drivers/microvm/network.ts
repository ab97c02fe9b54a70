/**
 * A microVM's network. `none`: no NIC at all, only the guest's lo. `all`: a virtio-net NIC on
 * QEMU's user-mode network (libslirp inside QEMU), with QEMU itself started in a network
 * namespace of the sandbox's own, where slirp4netns (as under the namespace driver, with
 * --disable-host-loopback) provides tap0 and the way out:
 *
 *   guest eth0 10.0.2.100 ─ QEMU's slirp (in the sandbox's netns) ─ tap0 ─ slirp4netns ─ host sockets
 *
 * QEMU's "host" (10.0.2.2 to the guest) is that namespace's own loopback, where nothing listens;
 * the host's loopback is refused by slirp4netns, and private, link-local and host addresses by the
 * daemon's nftables table on slirp4netns's sockets (net/egress.ts), as under the other drivers. QEMU's DNS forwarder reads /etc/resolv.conf,
 * which in its own mount namespace names slirp4netns's forwarder (10.0.2.3 of the netns), so the
 * guest's 10.0.2.3 resolves as the host does, whatever the host's resolv.conf names.
 *
 * An allow-list: no NIC either; the agent's forwarder listens on the guest's 127.0.0.1:PORT and
 * each connection comes over the virtio-serial port "realm-net" to the daemon, which connects it
 * to the sandbox's proxy socket (relay.ts).
 *
 * slirp4netns joins the VM's host cgroup, and gets an exit fd whose other end only QEMU holds:
 * it ends with QEMU, however QEMU ends. Its tap fd is what keeps the namespace, so nothing of the
 * network outlives the VM.
 */
import type { ChildProcess } from 'node:child_process';
import { readlinkSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { SLIRP, SLIRP_DNS, startSlirp } from '../shared/slirp.js';

/** The guest's address and gateway (those of slirp4netns's tap0 under the namespace driver). */
export const GUEST_IP = '10.0.2.100';

/** QEMU's arguments for the sandbox's network (after the agent's port, on the same virtio-serial bus). */
export function networkArgs(net: 'none' | 'all', proxyPort: number | undefined, dir: string): string[] {
  if (net === 'all') {
    // IPv6 off, as slirp4netns runs without it under the namespace driver.
    return [
      '-netdev',
      `user,id=nic,net=10.0.2.0/24,host=10.0.2.2,dns=10.0.2.3,dhcpstart=${GUEST_IP},ipv6=off`,
      '-device',
      'virtio-net-device,netdev=nic',
    ];
  }
  if (proxyPort !== undefined) {
    return [
      '-chardev',
      `socket,id=proxy,path=${relaySocket(dir)},server=on,wait=off`,
      '-device',
      'virtserialport,chardev=proxy,name=realm-net',
    ];
  }
  return [];
}

/** The host end of the forwarder's port (QEMU serves it; the daemon's relay connects). */
export const relaySocket = (dir: string): string => join(dir, 'net.sock');

/**
 * `argv` (QEMU) started in a new network namespace and a private mount namespace whose
 * /etc/resolv.conf names slirp4netns's DNS forwarder. Every step execs the next, so the pid
 * launched is QEMU's.
 */
export function inOwnNetns(argv: string[], dir: string): string[] {
  const resolv = join(dir, 'resolv.conf');
  writeFileSync(resolv, `nameserver ${SLIRP_DNS}\n`, { mode: 0o644 });
  return [
    '/usr/bin/unshare',
    '--net',
    '--mount',
    '--propagation',
    'private',
    '--',
    '/bin/sh',
    '-c',
    'mount --bind "$1" /etc/resolv.conf || exit 125; shift; exec "$@"',
    'sh',
    resolv,
    ...argv,
  ];
}

/**
 * Once the launched QEMU (`child`, started with a socket pair on fd 3) is in its own network
 * namespace, start slirp4netns there with the pair's other end as its exit fd. Our copy of that
 * end is closed after, so only QEMU's end keeps slirp4netns running.
 */
export async function attachNat(child: ChildProcess, cgroupProcs: string[]): Promise<void> {
  if (!SLIRP) throw new Error('network "all" needs slirp4netns (apt-get install slirp4netns)');
  const end = child.stdio[3] as Socket | null;
  const pid = child.pid;
  try {
    if (!end || !pid) throw new Error('QEMU was started without its exit fd');
    const own = readlinkSync('/proc/self/ns/net');
    for (let i = 0; ; i++) {
      let ns: string;
      try {
        ns = readlinkSync(`/proc/${pid}/ns/net`);
      } catch {
        throw new Error('QEMU exited before its network namespace was made');
      }
      if (ns !== own) break;
      if (i > 500) throw new Error('QEMU did not enter a network namespace of its own within 5 s');
      await new Promise((r) => setTimeout(r, 10));
    }
    await startSlirp(`/proc/${pid}/ns/net`, cgroupProcs, end);
  } finally {
    end?.destroy();
  }
}
