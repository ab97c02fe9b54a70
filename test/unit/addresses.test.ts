/** Which destinations sandboxes may reach (net/addresses.ts), and network `all` refused without its guard. */
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { Destinations, normalize, parseCidr, refuseUnguarded } from '../../src/net/addresses.js';
import { execFileSync } from 'node:child_process';
import { NFT, egressProblem, egressStatus, startEgress, stopEgress } from '../../src/net/egress.js';

void test('closed: loopback, private, CGNAT, link-local, ULA, reserved, and IPv4 inside IPv6; open: the rest', () => {
  const d = new Destinations();
  for (const a of [
    '127.0.0.2',
    '0.0.0.0',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.255',
    '192.168.1.1',
    '100.64.0.1',
    '100.127.255.254',
    '169.254.169.254',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fd00:ec2::254',
    'fc00::1',
    'fe80::1',
    'ff02::1',
    '::ffff:169.254.169.254',
    '::ffff:a9fe:a9fe',
    '[::ffff:10.0.0.1]',
    '0:0:0:0:0:ffff:0a00:0001',
    '64:ff9b::a9fe:a9fe',
    '::10.0.0.1',
  ]) {
    assert.ok(d.refusal(a), `${a} should be closed`);
  }
  for (const a of ['1.1.1.1', '172.32.0.1', '100.128.0.1', '198.18.0.2', '2001:4860:4860::8888', '::ffff:1.1.1.1'])
    assert.equal(d.refusal(a), null, `${a} should be open`);
  assert.equal(normalize('::FFFF:A9FE:A9FE'), '169.254.169.254');
  assert.equal(normalize('2001:db8::1'), '2001:db8::1');
});

void test('every address of the host is closed; an opened range opens exactly itself', () => {
  const d = new Destinations();
  for (const list of Object.values(networkInterfaces()))
    for (const i of list ?? []) assert.ok(d.refusal(i.address), `the host's ${i.address} should be closed`);
  const o = new Destinations([parseCidr('100.64.5.0/30'), parseCidr('fd00:77::/64')]);
  assert.equal(o.refusal('100.64.5.2'), null);
  assert.equal(o.refusal('::ffff:100.64.5.3'), null);
  assert.equal(o.refusal('fd00:77::9'), null);
  assert.ok(o.refusal('100.64.5.4'));
  assert.ok(o.refusal('fd00:78::1'));
});

void test('--allow-private takes ranges only', () => {
  assert.deepEqual(parseCidr('10.1.0.0/16'), { address: '10.1.0.0', prefix: 16, family: 'ipv4' });
  assert.deepEqual(parseCidr('fd00::1'), { address: 'fd00::1', prefix: 128, family: 'ipv6' });
  for (const bad of ['10.1.0.0/33', 'example.com/8', '10.0.0.0/8/1', '10.0.0.0/x', ''])
    assert.throws(() => parseCidr(bad), /allow-private/);
});

void test('network all is refused, with the reason, where the egress guard cannot be set up', async () => {
  const problem = await startEgress('no "quotes" allowed', []);
  try {
    assert.match(problem ?? '', /network "all" is off/);
    assert.throws(
      () => refuseUnguarded({ networkAllRefused: problem }, 'all'),
      (e: Error & { code?: string }) => e.code === 'DRIVER_UNAVAILABLE',
    );
    assert.doesNotThrow(() => refuseUnguarded({ networkAllRefused: problem }, 'none'));
  } finally {
    await stopEgress('no "quotes" allowed');
  }
});

const noGuard = process.getuid?.() !== 0 ? 'needs root' : egressProblem();

void test(
  "a daemon's table is there while it runs and gone after; tables of cgroups that are gone are swept",
  { skip: noGuard },
  async () => {
    const nft = (...args: string[]): string =>
      execFileSync(NFT ?? 'nft', args, {
        encoding: 'utf8',
        input:
          args[0] === '-f'
            ? 'table inet realm_egress_0000000000crash {\n  comment "realm: egress of network all sandboxes in cgroup realm-unit-gone-cgroup"\n}\n'
            : '',
      });
    nft('-f', '-');
    const root = `realm-unit-${process.pid}`;
    let table = '';
    try {
      assert.equal(await startEgress(root, []), undefined);
      table = /table inet (\w+)/.exec(egressStatus(root))?.[1] ?? '';
      const tables = nft('list', 'tables', 'inet');
      assert.doesNotMatch(tables, /realm_egress_0000000000crash/, 'the table of a cgroup that is gone was swept');
      assert.ok(table && tables.includes(`table inet ${table}\n`), `the daemon's table ${table} is there`);
    } finally {
      await stopEgress(root);
    }
    assert.ok(!nft('list', 'tables', 'inet').includes(`table inet ${table}\n`), "the daemon's table went with it");
  },
);
