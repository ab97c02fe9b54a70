/**
 * `realm image build` for real, with mmdebstrap and the Debian archive: bad recipes fail with a
 * clear code and leave nothing; the image lands in the content-addressed store (a sha256 digest,
 * recipe labels, IMAGE_IN_USE, export and re-import); the same recipe is a cache hit; the image
 * works in a sandbox as the unprivileged sandbox uid; a cancelled build leaves nothing; the CLI
 * prints progress and JSON.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { type ImageBuildOptions, RealmError, Sandbox, images, run } from '@realm/sdk';
import { hostMirror } from '../../src/images/build/mirror.js';
import { recipeHash, resolveRecipe } from '../../src/images/build/recipe.js';
import { type CliResult, realm as realmCli } from '../helpers/cli.js';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';
import { TEST_IMAGE_CACHE, buildSkipReason } from '../helpers/images.js';

const skip = (await namespaceSkipReason()) ?? (await buildSkipReason());
if (skip) console.log(`# skipping image build tests: ${skip}`);

const TINY = { from: 'debian:bookworm', packages: ['hello'] };

const realm = (url: string, args: string[]): Promise<CliResult> => realmCli(args, { url, timeoutMs: 600_000 });

/** Work dirs of builds of this recipe still in the cache, mounts under the cache, half-stored images. */
function buildLeftovers(dataDir: string, recipe: unknown): string[] {
  let prefix = '.build-';
  try {
    prefix += recipeHash(resolveRecipe(recipe, hostMirror())).slice(0, 12);
  } catch {
    prefix = ''; // an invalid recipe has no hash (and no build of it started)
  }
  const found = prefix && existsSync(TEST_IMAGE_CACHE) ? readdirSync(TEST_IMAGE_CACHE).filter((f) => f.startsWith(prefix)) : [];
  const staging = join(dataDir, 'images', 'tmp');
  if (existsSync(staging)) found.push(...readdirSync(staging).map((f) => `staged ${f}`));
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const point = line.split(' ')[1] ?? '';
    if ((prefix && point.startsWith(`${TEST_IMAGE_CACHE}/${prefix}`)) || point.startsWith(dataDir)) found.push(`mount ${point}`);
  }
  return found;
}

void describe('image build', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 0, imageCacheDir: TEST_IMAGE_CACHE }, skip);

  const expectError = async (opts: ImageBuildOptions, code: string, message: RegExp): Promise<void> => {
    await assert.rejects(images.build(opts, {}, t.client), (e: RealmError) => {
      assert.equal(e.code, code, `${JSON.stringify(opts)}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
    assert.ok(!(await t.client.images.list()).some((i) => i.names.includes(`${opts.name}:latest`)), `no image ${opts.name}`);
    assert.deepEqual(buildLeftovers(t.dataDir, { from: opts.from ?? 'debian:bookworm', packages: opts.packages ?? [] }), []);
  };

  void it('bad input: a clear code, and nothing left (no work dir, no half image, no mount)', { timeout: 300_000 }, async () => {
    await expectError(
      { name: 'bad', from: 'debian:bookworm', packages: ['Not A Package'] },
      'IMAGE_RECIPE_INVALID',
      /package names/,
    );
    await expectError({ name: 'bad', from: 'ubuntu:jammy' }, 'IMAGE_RECIPE_INVALID', /debian:SUITE/);
    await expectError({ name: 'host', from: 'debian:bookworm' }, 'IMAGE_RECIPE_INVALID', /host/);
    await expectError({ name: '../escape', from: 'debian:bookworm' }, 'IMAGE_RECIPE_INVALID', /image names/);
    await expectError({ name: 'no-recipe-named-so' }, 'IMAGE_RECIPE_INVALID', /--from debian:SUITE/);
    await expectError(
      { name: 'bad', from: 'debian:realm-no-such-suite' },
      'IMAGE_SUITE_NOT_FOUND',
      /no suite "realm-no-such-suite"/,
    );
    await expectError(
      { name: 'bad', from: 'debian:bookworm', packages: ['python3', 'realm-no-such-package'] },
      'IMAGE_PACKAGE_NOT_FOUND',
      /realm-no-such-package/,
    );
    assert.deepEqual(await images.built(t.client), []);
    assert.deepEqual(await leftovers(t), []);
  });

  void it(
    'builds an image that works in a sandbox as the unprivileged uid; the same recipe is a cache hit',
    { timeout: 900_000 },
    async () => {
      const phases: string[] = [];
      const first = await images.build({ name: 'tiny', ...TINY }, { onProgress: (p) => phases.push(p.phase) }, t.client);
      console.log(`# tiny image: ${first.cache}, ${(first.bytes / 1024 ** 2).toFixed(0)} MiB, ${(first.ms / 1000).toFixed(1)} s`);
      assert.ok(['built', 'tarball'].includes(first.cache));
      assert.equal(phases.at(-1), 'done');
      // Same recipe, packages in another order and repeated: the same hash, nothing built.
      const again = await images.build({ name: 'tiny', from: 'debian:bookworm', packages: ['hello', 'hello'] }, {}, t.client);
      assert.equal(again.cache, 'installed');
      assert.equal(again.hash, first.hash);
      // Unpacked on the host, nothing in it may be a set-uid or set-gid program.
      const suid = spawnSync('find', [first.rootfs, '-xdev', '-type', 'f', '-perm', '/6000'], { encoding: 'utf8' });
      assert.equal(suid.status, 0);
      assert.equal(suid.stdout, '');
      const listed = await images.built(t.client);
      assert.deepEqual(
        listed.map((i) => [i.name, i.hash, i.from, i.packages, i.digest]),
        [['tiny', first.hash, 'debian:bookworm', ['hello'], first.digest]],
      );
      // In the image store: a real digest and sizes, the recipe in the config's labels.
      const [row] = await t.client.images.list();
      assert.deepEqual(
        [row?.names, row?.digest, row?.source, row?.layers, row?.size && row.size >= first.bytes],
        [['tiny:latest'], first.digest, 'build', 1, true],
      );
      assert.match(first.digest, /^sha256:[0-9a-f]{64}$/);
      assert.ok((row?.unpackedSize ?? 0) > 1024 ** 2, 'unpacked size counted');
      const detail = await t.client.images.inspect('tiny');
      assert.deepEqual(detail.config.config?.Labels, {
        'org.realm.recipe': first.hash,
        'org.realm.base': 'debian:bookworm',
        'org.realm.packages': 'hello',
      });
      assert.equal(detail.rootfs, first.rootfs);

      const sb = await Sandbox.create({ image: 'tiny' }, t.client);
      try {
        const r = await sb.exec('hello && id -un && cat /etc/debian_version && ls /usr/share/man | wc -l');
        assert.equal(r.verdict, 'ok', r.stderr);
        const [greeting, user, debian, manPages] = r.stdout.trim().split('\n');
        assert.equal(greeting, 'Hello, world!');
        assert.equal(user, 'user');
        assert.match(debian ?? '', /^12\./);
        assert.ok(Number(manPages) <= 1, 'no man pages (only an empty man1)');
        // The image is read-only, the home directory writable.
        assert.equal((await sb.exec('touch /usr/x')).verdict, 'runtime-error');
        assert.equal((await sb.exec('echo hi > note && cat note')).stdout, 'hi\n');
        // A built image a sandbox uses cannot be removed.
        await assert.rejects(t.client.images.remove('tiny'), (e: RealmError) => e.code === 'IMAGE_IN_USE');
      } finally {
        await sb.destroy();
      }
      // Exported, it imports back as the very same image.
      const chunks: Uint8Array[] = [];
      for await (const c of await t.client.images.export('tiny')) chunks.push(c);
      const [copy] = await t.client.images.import(Buffer.concat(chunks), { name: 'tiny-copy' });
      assert.equal(copy?.digest, first.digest);
      assert.deepEqual((await t.client.images.remove('tiny-copy')).removed, ['tiny-copy:latest']);
      assert.ok(existsSync(first.rootfs), 'tiny still names it');
      assert.deepEqual(await leftovers(t), []);
    },
  );

  void it(
    'one build per image at a time; a cancelled build stops and leaves nothing; the installed image stays',
    { timeout: 300_000 },
    async () => {
      const before = (await images.built(t.client)).find((i) => i.name === 'tiny');
      const ctrl = new AbortController();
      let busy: Promise<unknown> | undefined;
      await assert.rejects(
        images.build(
          { name: 'tiny', ...TINY, noCache: true },
          {
            signal: ctrl.signal,
            onProgress: (p) => {
              busy ??= images.build({ name: 'tiny', ...TINY }, {}, t.client).then(
                () => 'built',
                (e: RealmError) => e.code,
              );
              if (p.phase === 'extract') ctrl.abort();
            },
          },
          t.client,
        ),
      );
      assert.equal(await busy, 'IMAGE_BUILD_BUSY');
      // The daemon stops mmdebstrap and removes its work dir once it has exited.
      for (let i = 0; i < 600 && buildLeftovers(t.dataDir, TINY).length; i++) await new Promise((r) => setTimeout(r, 100));
      assert.deepEqual(buildLeftovers(t.dataDir, TINY), []);
      assert.deepEqual(
        (await images.built(t.client)).find((i) => i.name === 'tiny'),
        before,
      );
    },
  );

  void it('the CLI shows progress lines (not a terminal) and prints the result as JSON', { timeout: 300_000 }, async () => {
    const json = await realm(t.url, ['image', 'build', 'tiny', '--from', 'debian:bookworm', '--packages', 'hello', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const r = JSON.parse(json.stdout) as { name: string; cache: string; digest: string };
    assert.equal(r.name, 'tiny');
    assert.equal(r.cache, 'installed');
    const plain = await realm(t.url, ['image', 'build', 'tiny', '--from', 'debian:bookworm', '--packages', 'hello']);
    assert.equal(plain.code, 0, plain.stderr);
    assert.match(plain.stderr, /^done: image tiny is up to date \(cache hit\)$/m);
    assert.match(plain.stdout, /^tiny: cache hit/);
    const bad = await realm(t.url, ['image', 'build', 'bad', '--from', 'debian:bookworm', '--packages', 'realm-no-such-package']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /realm-no-such-package.*\[IMAGE_PACKAGE_NOT_FOUND\]/);
    const ls = await realm(t.url, ['image', 'ls', '--json']);
    assert.deepEqual(
      (JSON.parse(ls.stdout) as { names: string[]; source: string; digest: string }[]).map((i) => [i.names, i.source, i.digest]),
      [[['tiny:latest'], 'build', r.digest]],
    );
    const table = await realm(t.url, ['image', 'ls']);
    assert.match(table.stdout, new RegExp(`^ *tiny:latest +${r.digest.slice(7, 19)} .* build `, 'm'));
  });
});

// A language on the tiny image, to fill a warm pool with sandboxes of that image.
const warmDataDir = mkdtempSync(join(tmpdir(), 'realm-test-'));
mkdirSync(join(warmDataDir, 'languages'));
writeFileSync(
  join(warmDataDir, 'languages', 'tinysh.toml'),
  'name = "tinysh"\nimage = "tiny"\nfile = "main.sh"\nrun = ["/bin/bash", "main.sh"]\n',
);

void describe('image rebuild', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d), { warm: 1, dataDir: warmDataDir, imageCacheDir: TEST_IMAGE_CACHE }, skip);

  void it(
    'replacing an image discards warm sandboxes of the old tree; runs use the new one; sandboxes keep the old image',
    { timeout: 900_000 },
    async () => {
      await t.daemon.engine.settled();
      const hostWarm = t.daemon.engine.warmIds(); // the default shapes, on `host`
      const old = await images.build({ name: 'tiny', ...TINY }, {}, t.client);
      const probe = 'if [ -e /usr/bin/hello ]; then echo with-hello; else echo without; fi\n';
      assert.equal((await run({ language: 'tinysh', code: probe }, t.client)).stdout, 'with-hello\n');
      const sb = await Sandbox.create({ image: 'tiny' }, t.client);
      await t.daemon.engine.settled(); // the pools hold sandboxes of the old tree now
      const oldTree = t.daemon.engine.warmIds().filter((id) => !hostWarm.includes(id));
      assert.equal(oldTree.length, 2, 'a warm run and a warm sandbox of tiny');
      const other = await images.build({ name: 'tiny', from: 'debian:bookworm', packages: [] }, {}, t.client);
      assert.notEqual(other.cache, 'installed');
      assert.notEqual(other.digest, old.digest);
      assert.deepEqual(
        t.daemon.engine.warmIds().filter((id) => oldTree.includes(id)),
        [],
        'warm sandboxes of the old tree are gone',
      );
      const r = await run({ language: 'tinysh', code: probe }, t.client);
      assert.equal(r.verdict, 'ok', r.stderr);
      assert.equal(r.stdout, 'without\n');
      // The sandbox made before keeps its image, which prune leaves while it lives.
      await t.client.images.prune();
      assert.equal((await sb.exec(probe)).stdout, 'with-hello\n');
      await sb.destroy();
      assert.equal((await t.client.images.prune()).unpacked, 1);
      assert.ok(!existsSync(old.rootfs));
      assert.deepEqual(await leftovers(t), []);
    },
  );
});
