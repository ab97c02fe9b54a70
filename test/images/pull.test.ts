/**
 * Pull from a real registry (Debian's docker-registry) through the daemon's API, run the image in
 * a sandbox, token auth through a bearer-token front, and registries that lie or hang.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Sandbox, type ImageProgress, RealmError as SdkError } from '@realm/sdk';
import { leftovers, namespaceSkipReason, removeTestDirs, startTestDaemon, type TestDaemon } from '../helpers/daemon.js';
import {
  BUSYBOX,
  busyboxLayers,
  makeImage,
  makeTar,
  push,
  registryAvailable,
  startRegistry,
  startTokenProxy,
  type RunningRegistry,
  type TestImage,
} from '../helpers/oci.js';
import { pullImage } from '../../src/images/pull.js';
import { RealmError } from '../../src/util/errors.js';

const skip =
  (await namespaceSkipReason()) ??
  (registryAvailable() ? undefined : 'docker-registry is not installed (npm run setup installs it)') ??
  (existsSync(BUSYBOX) ? undefined : `${BUSYBOX} is missing (busybox-static)`);
if (skip) console.log(`# skipping image pull tests: ${skip}`);

/** A registry that serves `img`'s manifest faithfully and whatever `blob` says for blobs. */
async function fakeRegistry(
  img: TestImage,
  blob: (digest: string, res: import('node:http').ServerResponse) => void,
): Promise<{ host: string; close(): Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const url = req.url ?? '';
    if (url === '/v2/') res.writeHead(200).end('{}');
    else if (url.includes('/manifests/'))
      res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end(img.manifest);
    else if (url.includes('/blobs/')) blob(url.split('/').pop() ?? '', res);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    host: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

void describe('image pull from a registry', { skip }, () => {
  let t: TestDaemon;
  let reg: RunningRegistry;
  let img: TestImage;
  const storeState = (): string =>
    JSON.stringify([
      readdirSync(join(t.dataDir, 'images/blobs/sha256')).sort(),
      readdirSync(join(t.dataDir, 'images/unpacked')).sort(),
      readdirSync(join(t.dataDir, 'images/tmp')),
    ]);
  const code = (c: string) => (e: unknown) => {
    assert.ok(e instanceof RealmError || e instanceof SdkError, String(e));
    assert.equal((e as RealmError).code, c, (e as Error).message);
    return true;
  };

  before(async () => {
    reg = await startRegistry();
    t = await startTestDaemon({ warm: 0 });
    img = makeImage(await busyboxLayers(), { gzip: true });
    await push(`http://${reg.host}`, 'realm/busybox', '1', img);
  });
  after(async () => {
    await t?.close();
    if (t) removeTestDirs(t);
    await reg?.stop();
  });

  void it('pulls with progress, runs the image in a sandbox, dedups a second pull, refuses rm while used', async () => {
    const ref = `${reg.host}/realm/busybox:1`;
    const events: ImageProgress[] = [];
    const got = await t.client.images.pull(ref, { onProgress: (p) => events.push(p) });
    assert.deepEqual(got, { names: [ref], digest: img.manifestDigest });
    for (const l of img.layers) {
      const last = events.filter((e) => e.type === 'layer' && e.digest === l.digest && e.phase === 'download').pop();
      assert.ok(
        last && last.type === 'layer' && last.bytes === l.data.length,
        `download progress for ${l.digest} reaches its size`,
      );
    }
    const [row] = await t.client.images.list();
    assert.equal(row?.layers, 3);
    assert.ok((row?.size ?? 0) > 0);

    const sb = await Sandbox.create({ image: ref }, t.client);
    const r = await sb.exec(['/bin/busybox', 'echo', 'hi']);
    assert.equal(r.stdout, 'hi\n');
    const look = await sb.exec([
      '/bin/busybox',
      'sh',
      '-c',
      'ls /opq; cat /etc/os-release /etc/secret; ls /etc/gone 2>&1; /bin/busybox touch /bin/x 2>&1',
    ]);
    assert.match(look.stdout, /^new$/m);
    assert.doesNotMatch(look.stdout, /^old$/m);
    assert.match(look.stdout, /NAME=realm-test/);
    assert.match(look.stdout, /root only/);
    assert.match(look.stdout, /No such file/);
    assert.match(look.stdout, /Read-only file system/);

    const again: ImageProgress[] = [];
    await t.client.images.pull(ref, { onProgress: (p) => again.push(p) });
    assert.ok(!again.some((e) => e.type === 'layer' && e.phase === 'download'), 'no layer downloaded twice');
    assert.equal(again.filter((e) => e.type === 'layer' && e.phase === 'exists').length, 3);

    await assert.rejects(t.client.images.remove(ref), code('IMAGE_IN_USE'));
    await sb.stop();
    await assert.rejects(t.client.images.remove(ref), code('IMAGE_IN_USE'), 'a stopped sandbox still uses it');
    await sb.destroy();
    assert.deepEqual(await t.client.images.remove(ref), { removed: [ref] });
    const pruned = await t.client.images.prune();
    assert.equal(pruned.blobs, 5);
    assert.deepEqual(await leftovers(t), []);
  });

  void it('follows a Bearer challenge to the token service, with basic credentials', async () => {
    const proxy = await startTokenProxy(reg.host, 'alice', 's3cret');
    try {
      const ref = `${proxy.host}/realm/busybox:1`;
      const before = storeState();
      await assert.rejects(t.client.images.pull(ref), code('IMAGE_PULL_FAILED'));
      assert.equal(storeState(), before);
      const got = await t.client.images.pull(ref, { username: 'alice', password: 's3cret' });
      assert.equal(got.digest, img.manifestDigest);
      assert.ok(
        proxy.tokenRequests.some(
          (q) => q.includes('scope=repository%3Arealm%2Fbusybox%3Apull') && q.includes('service=test-registry'),
        ),
        proxy.tokenRequests.join(' '),
      );
      await t.client.images.remove(ref);
    } finally {
      await proxy.close();
    }
  });

  void it('uses Basic credentials when the registry asks for them, and pulls by digest', async () => {
    const proxy = await startTokenProxy(reg.host, 'bob', 'pw', 'basic');
    const saved = { u: process.env.REALM_REGISTRY_USERNAME, p: process.env.REALM_REGISTRY_PASSWORD };
    try {
      const byDigest = `${proxy.host}/realm/busybox@${img.manifestDigest}`;
      await assert.rejects(
        t.client.images.pull(byDigest),
        (e: unknown) => code('IMAGE_PULL_FAILED')(e) && /username and password/.test((e as Error).message),
      );
      // The daemon's environment carries credentials when the request has none.
      process.env.REALM_REGISTRY_USERNAME = 'bob';
      process.env.REALM_REGISTRY_PASSWORD = 'pw';
      const got = await t.client.images.pull(byDigest);
      assert.deepEqual(got, { names: [byDigest], digest: img.manifestDigest });
      assert.ok((await t.client.images.list()).some((i) => i.names.includes(byDigest)));
      await t.client.images.remove(byDigest);
    } finally {
      if (saved.u === undefined) delete process.env.REALM_REGISTRY_USERNAME;
      else process.env.REALM_REGISTRY_USERNAME = saved.u;
      if (saved.p === undefined) delete process.env.REALM_REGISTRY_PASSWORD;
      else process.env.REALM_REGISTRY_PASSWORD = saved.p;
      await proxy.close();
    }
  });

  void it('refuses a registry that serves the wrong bytes for a digest, leaving the store as it was', async () => {
    const img = makeImage([await makeTar([{ name: 'f', content: `fresh ${Math.random()}` }])]);
    const other = await makeTar([{ name: 'evil', content: 'not what the manifest says' }]);
    const lying = await fakeRegistry(img, (digest, res) => {
      const b = [img.config, ...img.layers].find((x) => x.digest.endsWith(digest));
      res.writeHead(200).end(b === img.layers[0] ? other : b?.data);
    });
    try {
      const before = storeState();
      await assert.rejects(
        pullImage(t.daemon.engine.images, `${lying.host}/realm/lie:1`),
        (e: unknown) => code('IMAGE_PULL_FAILED')(e) && /digest|bytes/.test((e as Error).message),
      );
      assert.equal(storeState(), before);
      await assert.rejects(t.client.images.inspect(`${lying.host}/realm/lie:1`), code('IMAGE_NOT_FOUND'));
    } finally {
      await lying.close();
    }
  });

  void it('gives up on a registry that hangs, before answering or in the middle of a layer', async () => {
    const img = makeImage([await makeTar([{ name: 'f', content: `fresh ${Math.random()}` }])]);
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const stalls = await fakeRegistry(img, (digest, res) => {
      const b = [img.config, ...img.layers].find((x) => x.digest.endsWith(digest));
      res.writeHead(200, { 'content-length': String(b?.data.length ?? 0) });
      res.write(b?.data.subarray(0, 10));
    });
    try {
      const before = storeState();
      await assert.rejects(
        pullImage(t.daemon.engine.images, `127.0.0.1:${(silent.address() as AddressInfo).port}/a/b:1`, { timeoutMs: 500 }),
        (e: unknown) => code('IMAGE_PULL_FAILED')(e) && /did not answer/.test((e as Error).message),
      );
      await assert.rejects(
        pullImage(t.daemon.engine.images, `${stalls.host}/a/b:1`, { timeoutMs: 500 }),
        (e: unknown) => code('IMAGE_PULL_FAILED')(e) && /stopped sending/.test((e as Error).message),
      );
      assert.equal(storeState(), before);
    } finally {
      silent.closeAllConnections();
      await new Promise((r) => silent.close(r));
      await stalls.close();
    }
  });

  void it('a client that goes away cancels its pull and nothing of it stays', async () => {
    const img = makeImage([await makeTar([{ name: 'f', content: `fresh ${Math.random()}`.repeat(100) }])]);
    let served = 0;
    const stalls = await fakeRegistry(img, (digest, res) => {
      const b = [img.config, ...img.layers].find((x) => x.digest.endsWith(digest));
      res.writeHead(200, { 'content-length': String(b?.data.length ?? 0) });
      if (b === img.config) res.end(b.data);
      else {
        served++;
        res.write(b?.data.subarray(0, 10)); // then nothing: the daemon's 30 s stall timeout is far off
      }
    });
    try {
      const before = storeState();
      const ac = new AbortController();
      await assert.rejects(
        t.client.images.pull(`${stalls.host}/a/b:1`, {
          signal: ac.signal,
          onProgress: (p) => {
            if (p.type === 'layer' && p.phase === 'download') ac.abort();
          },
        }),
      );
      assert.equal(served, 1);
      for (let i = 0; i < 100 && storeState() !== before; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(storeState(), before, 'the staged pull was removed');
    } finally {
      await stalls.close();
    }
  });

  void it('refuses plain http to anything but loopback, and unknown media types', async () => {
    // A token realm on a non-loopback http address is refused before any connection is made.
    const server = createServer((_req, res) =>
      res.writeHead(401, { 'www-authenticate': 'Bearer realm="http://192.0.2.1/token",service="x"' }).end(),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const odd = {
      ...img,
      manifest: Buffer.from(
        JSON.stringify({ ...(JSON.parse(img.manifest.toString()) as object), mediaType: 'application/vnd.example.thing' }),
      ),
    };
    const weird = await fakeRegistry(odd, (_d, res) => res.writeHead(404).end());
    try {
      await assert.rejects(
        pullImage(t.daemon.engine.images, `127.0.0.1:${(server.address() as AddressInfo).port}/a/b:1`),
        (e: unknown) => code('IMAGE_PULL_FAILED')(e) && /only loopback/.test((e as Error).message),
      );
      await assert.rejects(pullImage(t.daemon.engine.images, `${weird.host}/a/b:1`), code('IMAGE_INVALID'));
      await assert.rejects(t.client.images.pull('no-registry-here:1'), code('IMAGE_INVALID'));
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      await weird.close();
    }
  });
});
