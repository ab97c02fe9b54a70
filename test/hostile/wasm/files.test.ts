/**
 * Hostile WASI modules against the wasm driver's file boundary: a module sees only its preopened
 * directories (a run's working directory; a sandbox's working directory and volumes, read-only
 * where asked), and nothing else of the sandbox or the host: not by path, symlink or working
 * directory, as a module or as a component. (Runs once: see common.ts.)
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Sandbox, run } from '@realm/sdk';
import type { TestDaemon } from '../../helpers/daemon.js';
import { component, wasmFile, wasmSkipReason } from '../../helpers/wasm.js';
import { assertContained, nonce } from '../common.js';
import { lines } from './common.js';
import { filesFixture } from './files-fixture.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile file tests: ${skip}`);

void describe('hostile wasm modules: files', { skip }, () => {
  let t: TestDaemon;
  let tool: Buffer;
  let hostFile: string;
  const { secret, runTool, noSecret } = filesFixture(skip, (f) => ({ t, tool, hostFile } = f));

  void it('escapes by path from a run: .., absolute paths, /proc, the runner itself, the host file: all refused', async () => {
    const paths = [
      '..',
      '../..',
      '../../etc/passwd',
      '/home/user/../../etc/passwd',
      './../user/../../etc/hostname',
      '/etc/passwd',
      '/etc',
      '/proc/self/environ',
      '/proc/self/mem',
      '/proc/1/root/etc/passwd',
      '/usr/local/lib/realm/wasm-runner/realm-wasm',
      '/usr/bin/python3',
      '/tmp',
      '/dev/null',
      hostFile,
      t.dataDir,
      '//etc/passwd',
      '/home/user/main.wasm/..',
    ];
    const r = await runTool(['read', ...paths]);
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
    noSecret(r.stdout + r.stderr);
    // The working directory itself opens, by both of its names.
    const own = lines(await runTool(['read', 'main.wasm', '/home/user/main.wasm']));
    assert.match(own['main.wasm'] ?? '', /^opened/);
    assert.match(own['/home/user/main.wasm'] ?? '', /^opened/);
    await assertContained(t);
  });

  void it('a run sees exactly its two preopens (. and /home/user), and no socket', async () => {
    const r = await runTool(['preopens']);
    assert.equal(r.verdict, 'ok', r.stderr);
    const pre = r.stdout.split('\n').filter((l) => l.startsWith('preopen '));
    assert.deepEqual(
      pre.map((l) => l.replace(/^preopen \d+: /, '')),
      ['.', '/home/user'],
    );
    assert.equal(lines(r).sockets, '0');
  });

  void it('symlinks the module makes in its own directory lead nowhere outside it', async () => {
    const links = ['l-abs', 'l-up', 'l-host', 'l-proc'];
    const targets = ['/etc/passwd', '../../etc/passwd', hostFile, '/proc/self/environ'];
    for (const [i, target] of targets.entries()) {
      const r = await runTool(['symlink', target, links[i]]);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      assert.ok(!got[links[i]]?.startsWith('opened'), `${links[i]} -> ${target}: ${got[links[i]]}`);
      noSecret(r.stdout);
    }
    // A link inside the directory to a file inside it still works: the refusal is about leaving.
    const inside = lines(await runTool(['symlink', 'main.wasm', 'l-in']));
    assert.match(inside['l-in'] ?? '', /^opened/);
    await assertContained(t);
  });

  void it('symlinks planted in a volume (to /etc, /proc, the host file, upwards) lead nowhere from a wasm sandbox', async () => {
    const vol = `wasm-hostile-${nonce()}`;
    // Planted by a native sandbox (a shell can make any link), then mounted into a wasm one.
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    const plant = await planter.exec([
      '/bin/sh',
      '-c',
      `ln -s /etc/passwd /data/passwd && ln -s /etc /data/etc && ln -s /proc/self /data/self && ln -s ${hostFile} /data/host && ln -s ../../../../.. /data/up && echo ok > /data/plain`,
    ]);
    assert.equal(plant.exitCode, 0, plant.stderr);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data' }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      const paths = [
        '/data/passwd',
        '/data/etc/passwd',
        '/data/etc',
        '/data/self/environ',
        '/data/host',
        `/data/up${hostFile}`,
        '/data/up/etc/passwd',
      ];
      const r = await sb.exec(['main.wasm', 'read', ...paths, '/data/plain']);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
      assert.equal(got['/data/plain'], 'opened ok ');
      noSecret(r.stdout + r.stderr);
      // Writing through them goes nowhere either.
      const w = await sb.exec(['main.wasm', 'write', '/data/passwd', '/data/host', '/data/etc/realm-owned']);
      const wrote = lines(w);
      for (const p of ['/data/passwd', '/data/host', '/data/etc/realm-owned']) assert.notEqual(wrote[p], 'written', p);
      assert.equal(readFileSync(hostFile, 'utf8'), `${secret}\n`, 'the host file is unchanged');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it('a read-only volume refuses every change: write, append, truncate, rename, unlink, mkdir, links, times', async () => {
    const vol = `wasm-ro-${nonce()}`;
    const writer = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    await writer.files.write('/data/kept.txt', 'original\n');
    await writer.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data', readOnly: true }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      const r = await sb.exec(['main.wasm', 'mutate', '/data', 'kept.txt']);
      assert.equal(r.verdict, 'ok', r.stderr);
      const got = lines(r);
      for (const what of ['/data/kept.txt', 'append', 'truncate', 'rename', 'unlink', 'mkdir', 'symlink', 'link', 'utimes'])
        assert.ok(got[what] && !['written', 'opened', 'done'].includes(got[what]), `${what}: ${got[what] ?? '(not tried)'}`);
      const after = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
      const ls = await after.exec(['/bin/sh', '-c', 'ls -A /data; cat /data/kept.txt']);
      await after.destroy();
      assert.equal(ls.stdout, 'kept.txt\noriginal\n', 'the read-only volume changed');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it("an exec's working directory is its module's preopen: outside the home and volumes, or through a link, it is refused", async () => {
    const vol = `wasm-cwd-${nonce()}`;
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    const plant = await planter.exec([
      '/bin/sh',
      '-c',
      'ln -s /proc/self /data/self && ln -s /etc /data/etc && mkdir /data/real',
    ]);
    assert.equal(plant.exitCode, 0, plant.stderr);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data', readOnly: true }] }, t.client);
    try {
      await sb.files.write('/home/user/main.wasm', tool);
      // A module cannot plant such a link itself: WASI refuses a link to an absolute path.
      const made = lines(await sb.exec(['main.wasm', 'symlink', '/proc/self', 'self']));
      assert.ok(made['symlink self'] && made['symlink self'] !== 'made', `symlink self: ${made['symlink self']}`);
      const probe = ['/proc/self/environ', 'environ', 'passwd', '/etc/passwd', 'status'];
      const refused: string[] = [];
      const linked: string[] = [];
      for (const cwd of [
        '/',
        '/proc',
        '/proc/self',
        '/etc',
        '/tmp',
        '/usr/local/lib/realm',
        '/home/user/../../proc',
        '/data/self',
        '/data/etc',
      ]) {
        try {
          const r = await sb.exec(['/home/user/main.wasm', 'read', ...probe], { cwd });
          const got = lines(r);
          // Past the driver's check (a link inside the home or a volume): the runner refuses the link.
          assert.equal(r.verdict, 'runtime-error', `cwd ${cwd}: ${r.stdout}`);
          assert.match(r.stderr, /symbolic link/, `cwd ${cwd}`);
          for (const p of probe) assert.ok(!got[p]?.startsWith('opened'), `cwd ${cwd}: ${p}: ${got[p]}`);
          linked.push(cwd);
        } catch (e) {
          if (e instanceof assert.AssertionError) throw e;
          assert.equal((e as { code?: string }).code, 'INVALID_REQUEST', `cwd ${cwd}: ${String(e)}`);
          refused.push(cwd);
        }
      }
      assert.deepEqual(refused, ['/', '/proc', '/proc/self', '/etc', '/tmp', '/usr/local/lib/realm', '/home/user/../../proc']);
      assert.deepEqual(linked, ['/data/self', '/data/etc']);
      // A directory inside a read-only volume is a read-only working directory.
      const ro = lines(await sb.exec(['/home/user/main.wasm', 'write', 'new.txt'], { cwd: '/data/real' }));
      assert.notEqual(ro['new.txt'], 'written');
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });

  void it('a preview 2 component (runner.py) meets the same walls: escapes refused, no preopen through a link', async () => {
    const comp = await component(tool);
    const paths = [
      '..',
      '../../etc/passwd',
      '/etc/passwd',
      '/proc/self/environ',
      hostFile,
      '/usr/local/lib/realm/wasm-runner/runner.py',
    ];
    const r = await run(
      { language: 'wasm', files: [wasmFile(comp)], args: ['read', ...paths, 'main.wasm'], timeout: '30s' },
      t.client,
    );
    assert.equal(r.verdict, 'ok', r.stderr);
    const got = lines(r);
    for (const p of paths) assert.ok(got[p] && !got[p].startsWith('opened'), `${p}: ${got[p] ?? '(not tried)'}`);
    assert.match(got['main.wasm'] ?? '', /^opened/);
    noSecret(r.stdout + r.stderr);
    const vol = `wasm-comp-${nonce()}`;
    const planter = await Sandbox.create({ volumes: [{ volume: vol, path: '/data' }] }, t.client);
    assert.equal((await planter.exec(['/bin/ln', '-s', '/proc/self', '/data/self'])).exitCode, 0);
    await planter.destroy();
    const sb = await Sandbox.create({ driver: 'wasm', volumes: [{ volume: vol, path: '/data' }] }, t.client);
    try {
      await sb.files.write('/home/user/comp.wasm', comp);
      const linked = await sb.exec(['/home/user/comp.wasm', 'read', 'environ', 'status'], { cwd: '/data/self' });
      assert.equal(linked.verdict, 'runtime-error', linked.stdout);
      assert.match(linked.stderr, /symbolic link/);
      assert.doesNotMatch(linked.stdout, /opened/);
    } finally {
      await sb.destroy();
    }
    await assertContained(t);
  });
});
