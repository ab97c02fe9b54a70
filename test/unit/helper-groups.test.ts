/**
 * realm-helper spawn --groups and sandbox --groups (native/realm-helper.c, native/launch.c) as
 * root: a sandbox uid carries a shared "traversal" group that passes through a 0710 root:GROUP
 * directory (as the daemon's data and runtime dirs) without listing it; a uid without it is
 * refused. In a user namespace bubblewrap makes as that uid (setgroups "deny"), the group stays
 * in force and shows as the overflow gid 65534.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { BWRAP, HELPER } from '../../src/drivers/shared/helper.js';
import { runCommand } from '../../src/util/run-command.js';
import { minimalBwrapArgs } from '../helpers/bwrap.js';

const BOX = 600123;
const TRAVERSE = 600001;

const skip = process.getuid?.() !== 0 ? 'spawn changes uid and groups as root; run the unit tests as root' : undefined;
if (skip) console.log(`skipped: ${skip}`);
const base = mkdtempSync(join(tmpdir(), 'realm-groups-'));
chmodSync(base, 0o711);
after(() => rmSync(base, { recursive: true, force: true }));

/** A 0710 root:TRAVERSE directory holding a readable file. */
const guarded = join(base, 'guarded');
mkdirSync(guarded);
writeFileSync(join(guarded, 'f'), 'secret');
if (!skip) chownSync(guarded, 0, TRAVERSE);
chmodSync(guarded, 0o710);

function spawnAs(groups: string | undefined, ...cmd: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const args = [
    'spawn',
    '--uid',
    String(BOX),
    '--gid',
    String(BOX),
    ...(groups !== undefined ? ['--groups', groups] : []),
    '--',
    ...cmd,
  ];
  return runCommand(HELPER, args, { env: {}, timeoutMs: 10_000 }).then((r) => ({
    code: r.code,
    out: r.stdout.trim(),
    err: r.stderr.trim(),
  }));
}

void test('spawn --groups sets the supplementary groups; without it there are none', { skip }, async () => {
  assert.equal((await spawnAs(String(TRAVERSE), '/usr/bin/id', '-G')).out, `${BOX} ${TRAVERSE}`);
  assert.equal((await spawnAs(`${TRAVERSE},600002`, '/usr/bin/id', '-G')).out, `${BOX} ${TRAVERSE} 600002`);
  assert.equal((await spawnAs(undefined, '/usr/bin/id', '-G')).out, String(BOX));
  for (const bad of ['', 'x', '1,', ',1', '-1', ' 1', '1;2']) {
    const r = await spawnAs(bad, '/usr/bin/id');
    assert.equal(r.code, 125, `--groups '${bad}'`);
    assert.match(r.err, /--groups wants/);
  }
  const enter = await runCommand(
    HELPER,
    ['enter', '--target', '1', '--seccomp', '/dev/null', '--uid', '1', '--gid', '1', '--groups', '5', '--', '/bin/true'],
    { env: {} },
  );
  assert.equal(enter.code, 125);
  assert.match(enter.stderr, /--groups is for spawn and sandbox only/);
});

void test(
  'the traversal group passes through a 0710 root:GROUP directory, never lists it; without it, no way through',
  { skip },
  async () => {
    const file = join(guarded, 'f');
    assert.deepEqual(await spawnAs(String(TRAVERSE), '/bin/cat', file), { code: 0, out: 'secret', err: '' });
    const list = await spawnAs(String(TRAVERSE), '/bin/ls', guarded);
    assert.notEqual(list.code, 0);
    assert.match(list.err, /Permission denied/);
    const without = await spawnAs(undefined, '/bin/cat', file);
    assert.notEqual(without.code, 0);
    assert.match(without.err, /Permission denied/);
  },
);

void test(
  "in bubblewrap's user namespace (setgroups deny) the group stays, shown as 65534, and still passes",
  { skip: skip ?? (existsSync(BWRAP) ? undefined : 'no bubblewrap') },
  async () => {
    const bwrap = (groups: string | undefined): ReturnType<typeof spawnAs> =>
      spawnAs(
        groups,
        BWRAP,
        ...minimalBwrapArgs(),
        '--ro-bind',
        join(guarded, 'f'),
        '/f',
        '--',
        '/bin/sh',
        '-c',
        'id -G; cat /proc/self/setgroups; cat /f',
      );
    assert.deepEqual(await bwrap(String(TRAVERSE)), { code: 0, out: '1000 65534\ndeny\nsecret', err: '' });
    const without = await bwrap(undefined);
    assert.notEqual(without.code, 0);
    assert.match(without.err, /Permission denied/); // bwrap cannot reach the file to bind it
  },
);

void test('sandbox --groups: the one-shot builder keeps the group (65534 inside); without it, none', { skip }, async () => {
  const seccomp = join(base, 'seccomp.bpf');
  await runCommand(HELPER, ['seccomp', seccomp], { env: {} });
  const groupsInside = async (groups: string[]): Promise<string> => {
    const root = mkdtempSync(join(base, 'root-'));
    chmodSync(root, 0o755);
    const r = await runCommand(
      HELPER,
      [
        'sandbox',
        '--uid',
        String(BOX),
        ...groups,
        '--seccomp',
        seccomp,
        '--base',
        root,
        '--root',
        'host',
        '--etc',
        '/etc',
        '--init',
        '/usr/bin/true',
        '--tmp',
        String(1 << 20),
        '--home',
        String(1 << 20),
        '--hostname',
        'g',
        '--',
        '/usr/bin/grep',
        '^Groups:',
        '/proc/self/status',
      ],
      { env: {}, timeoutMs: 10_000 },
    );
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.replace('Groups:', '').trim();
  };
  assert.equal(await groupsInside(['--groups', String(TRAVERSE)]), '65534');
  assert.equal(await groupsInside([]), '');
});
