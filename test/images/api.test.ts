/** Images through the daemon: streamed import, export, list, inspect, remove, prune; and the CLI. */
import assert from 'node:assert/strict';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Sandbox, RealmError } from '@realm/sdk';
import { type CliResult, realm as realmCli } from '../helpers/cli.js';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import { busyboxLayers, makeImage, makeTar, ociArchive } from '../helpers/oci.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping image API tests: ${skip}`);

/** bin/realm, asynchronously (the daemon under test lives in this process). */
const realm = (url: string, args: string[]): Promise<CliResult> => realmCli(args, { url, maxBuffer: 64 * 1024 * 1024 });

void describe('images over the API and the CLI', { skip }, () => {
  let t: TestDaemon;
  let files: string;
  const tmpEntries = (): string[] => readdirSync(join(t.dataDir, 'images/tmp'));
  before(async () => {
    t = await startTestDaemon({ warm: 1 });
    files = mkdtempSync(join(tmpdir(), 'realm-image-files-'));
  });
  after(async () => {
    await t?.close();
    if (t) removeTestDirs(t);
    rmSync(files, { recursive: true, force: true });
  });

  void it('imports a streamed upload, runs it, exports it, imports the export under a new name', async () => {
    const archive = join(files, 'bb.tar');
    writeFileSync(archive, await ociArchive(makeImage(await busyboxLayers(), { gzip: true }), 'bb:1'));
    const [got] = await t.client.images.import(Readable.toWeb(createReadStream(archive)) as ReadableStream<Uint8Array>);
    assert.deepEqual(got?.names, ['bb:1']);
    const sb = await Sandbox.create({ image: 'bb:1' }, t.client);
    assert.equal((await sb.exec(['/bin/busybox', 'echo', 'hi'])).stdout, 'hi\n');
    await sb.destroy();
    const sbByDigest = await Sandbox.create({ image: got.digest }, t.client);
    assert.equal((await sbByDigest.exec(['/bin/sh', '-c', 'cat /usr/hello'])).stdout, 'hello from layer 3\n');

    const chunks: Uint8Array[] = [];
    for await (const c of await t.client.images.export('bb:1')) chunks.push(c);
    const [copy] = await t.client.images.import(Buffer.concat(chunks), { name: 'bb-copy:2' });
    assert.equal(copy?.digest, got?.digest);
    const list = await t.client.images.list();
    assert.deepEqual(
      list.map((i) => i.names),
      [['bb-copy:2', 'bb:1']],
    );
    const info = await t.client.images.inspect('bb:1');
    assert.equal(info.layers, 3);
    assert.equal(info.config.architecture, 'amd64');

    // The digest's last names go: refused while a sandbox made from the digest lives.
    await t.client.images.remove('bb-copy:2');
    await assert.rejects(t.client.images.remove('bb:1'), (e: unknown) => e instanceof RealmError && e.code === 'IMAGE_IN_USE');
    await sbByDigest.destroy();
    await t.client.images.remove('bb:1');
    assert.deepEqual(await t.client.images.list(), []);
    const pruned = await t.client.images.prune();
    assert.equal(pruned.blobs, 5);
    assert.deepEqual(tmpEntries(), []);
    assert.deepEqual(await leftovers(t), [], 'warm sandboxes of the removed image were discarded');
  });

  void it('a name moved to a new image leaves running sandboxes on the old one until they go', async () => {
    const bb = readFileSync(join(files, 'bb.tar'));
    const [v1] = await t.client.images.import(bb, { name: 'mv:1' });
    const sb = await Sandbox.create({ image: 'mv:1' }, t.client);
    const [v2] = await t.client.images.import(await ociArchive(makeImage([await makeTar([{ name: 'v2', content: 'two' }])])), {
      name: 'mv:1',
    });
    assert.notEqual(v1?.digest, v2?.digest);
    await t.client.images.prune();
    assert.equal(
      (await sb.exec(['/bin/busybox', 'cat', '/usr/hello'])).stdout,
      'hello from layer 3\n',
      'the old root is still there',
    );
    await assert.rejects(t.client.images.remove(v1.digest), (e: unknown) => e instanceof RealmError && e.code === 'IMAGE_IN_USE');
    await sb.destroy();
    const pruned = await t.client.images.prune();
    assert.equal(pruned.unpacked, 1);
    await t.client.images.remove('mv:1');
    await t.client.images.prune();
    assert.deepEqual(await leftovers(t), []);
  });

  void it('refuses a corrupt upload with IMAGE_INVALID and keeps nothing of it', async () => {
    const res = await fetch(`${t.url}/v1/images/import`, {
      method: 'POST',
      headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/x-tar' },
      body: Buffer.from('definitely not a tarball '.repeat(100)),
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'IMAGE_INVALID');
    assert.deepEqual(tmpEntries(), []);
    const missing = await fetch(`${t.url}/v1/images/${encodeURIComponent('nope:1')}`, {
      headers: { authorization: `Bearer ${t.token}` },
    });
    assert.equal(missing.status, 404);
  });

  void it("takes uploads larger than the API's general body limit on the import route", async () => {
    const big = await ociArchive(
      makeImage([await makeTar([{ name: 'big', content: Buffer.alloc(90 * 1024 * 1024, 7) }])]),
      'big:1',
    );
    const [got] = await t.client.images.import(big);
    assert.deepEqual(got?.names, ['big:1']);
    await t.client.images.remove('big:1');
    await t.client.images.prune();
  });

  void it('the CLI imports with --name, lists with sizes, exports, inspects and removes, with --json', async () => {
    const archive = join(files, 'plain.tar');
    writeFileSync(
      archive,
      await ociArchive(
        makeImage([
          await makeTar([
            { name: 'etc/', type: 'directory' },
            { name: 'etc/motd', content: 'cli\n' },
          ]),
        ]),
      ),
    );
    const imp = await realm(t.url, ['image', 'import', archive, '--name', 'cli/img:3', '--json']);
    assert.equal(imp.code, 0, imp.stderr);
    assert.deepEqual((JSON.parse(imp.stdout) as { names: string[] }[])[0]?.names, ['cli/img:3']);
    const ls = await realm(t.url, ['image', 'ls']);
    assert.match(ls.stdout, /NAME\s+DIGEST\s+SIZE\s+UNPACKED\s+LAYERS\s+SOURCE\s+CREATED/);
    assert.match(ls.stdout, /cli\/img:3\s+[0-9a-f]{12}\s+[\d.]+ (B|KiB)/);
    const lsJson = await realm(t.url, ['image', 'ls', '--json']);
    assert.equal((JSON.parse(lsJson.stdout) as unknown[]).length, 1);
    const out = join(files, 'out.tar');
    const exp = await realm(t.url, ['image', 'export', 'cli/img:3', out]);
    assert.equal(exp.code, 0, exp.stderr);
    assert.ok(readFileSync(out).length > 1024);
    const insp = await realm(t.url, ['image', 'inspect', 'cli/img:3']);
    assert.equal((JSON.parse(insp.stdout) as { layers: number }).layers, 1);
    const layout = join(files, 'layout');
    mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
    const limg = makeImage([await makeTar([{ name: 'from-layout', content: 'dir\n' }])]);
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(
      join(layout, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        manifests: [
          { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: limg.manifestDigest, size: limg.manifest.length },
        ],
      }),
    );
    for (const b of [{ digest: limg.manifestDigest, data: limg.manifest }, limg.config, ...limg.layers])
      writeFileSync(join(layout, 'blobs/sha256', b.digest.slice(7)), b.data);
    const fromDir = await realm(t.url, ['image', 'import', layout, '--name', 'layout:dir']);
    assert.equal(fromDir.code, 0, fromDir.stderr);
    assert.match(fromDir.stdout, /^layout:dir sha256:/);
    await t.client.images.remove('layout:dir');
    const bad = await realm(t.url, ['image', 'import', join(files, 'bb.tar'), '--name', 'Bad Name']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /IMAGE_INVALID/);
    const rm = await realm(t.url, ['image', 'rm', 'cli/img:3', '--json']);
    assert.deepEqual(JSON.parse(rm.stdout), { removed: ['cli/img:3'] });
    const prune = await realm(t.url, ['image', 'prune']);
    assert.match(prune.stdout, /removed 6 blobs/);
  });
});
