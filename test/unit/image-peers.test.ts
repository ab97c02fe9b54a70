/**
 * Images brought from other nodes (cluster/image-peers.ts) into a real image store, from peers
 * played by HTTP servers on loopback serving OCI archives: one that has none (404), one whose
 * archive carries a layer that is not the one its manifest names, one that is sound. The bad
 * archive imports nothing; the sound one imports the image under its name.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ImagePeers } from '../../src/cluster/image-peers.js';
import type { NodeView, Nodes } from '../../src/cluster/types.js';
import { importArchive } from '../../src/images/import.js';
import { ImageStore } from '../../src/images/store.js';
import type { RealmError } from '../../src/util/errors.js';
import { makeImage, makeTar, ociArchive, type TestImage } from '../helpers/oci.js';

const code = (e: unknown): string | undefined => (e as RealmError).code;
const dirs: string[] = [];
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A node's image export as a peer sees it: `archives` by image name; paths asked, in order. */
async function peer(id: string, archives: Map<string, Buffer>): Promise<{ view: NodeView; asked: string[] }> {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(`${req.url ?? ''} as ${String(req.headers['x-realm-principal'])}`);
    const name = decodeURIComponent(/^\/v1\/images\/([^/]+)\/export$/.exec(req.url ?? '')?.[1] ?? '');
    const tar = archives.get(name);
    if (!tar || req.headers.authorization !== 'Bearer rlmpeer_unit') {
      res.writeHead(404).end('{"error":{"code":"IMAGE_NOT_FOUND","message":"no"}}');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-tar' }).end(tar);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    view: {
      id,
      address: `http://127.0.0.1:${port}`,
      tags: [],
      state: 'up',
      fenced: false,
      self: false,
      joinedAt: '',
      report: null,
    },
    asked,
  };
}

function nodesOf(others: NodeView[]): Nodes {
  const partial: Pick<Nodes, 'selfId' | 'clustered' | 'list' | 'peerToken'> = {
    selfId: 'me',
    clustered: true,
    list: () => Promise.resolve(others),
    peerToken: () => 'rlmpeer_unit',
  };
  return partial as Nodes;
}

function openStore(): { store: ImageStore; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'realm-image-peers-unit-'));
  dirs.push(dir);
  return { store: new ImageStore({ dir: join(dir, 'images') }), dir };
}

/** The image with its first layer's bytes changed under the same digest (what a lying or broken peer sends). */
function tampered(img: TestImage): TestImage {
  const [first, ...rest] = img.layers;
  if (!first) throw new Error('no layer');
  const data = Buffer.from(first.data);
  data[600] = (data[600] ?? 0) ^ 1;
  return { ...img, layers: [{ ...first, data }, ...rest] };
}

void describe('images from other nodes (unit)', () => {
  void it('brings the image from the node that has it, past one that has none and one whose archive is wrong', async () => {
    const img = makeImage([await makeTar([{ name: 'hello', content: 'hello from a peer\n' }])]);
    const empty = await peer('n-404', new Map());
    const liar = await peer('n-liar', new Map([['app:1', await ociArchive(tampered(img), 'app:1')]]));
    const good = await peer('n-good', new Map([['app:1', await ociArchive(img, 'app:1')]]));
    const { store } = openStore();
    const lines: string[] = [];
    const peers = new ImagePeers(
      nodesOf([empty.view, liar.view, good.view]),
      (input) => importArchive(store, input),
      (l) => lines.push(l),
    );
    assert.equal(await peers.fetch('app:1'), true);
    assert.deepEqual(
      (await store.list()).map((i) => [i.names, i.digest]),
      [[['app:1'], img.manifestDigest]],
    );
    assert.deepEqual(empty.asked, ['/v1/images/app%3A1/export as uid:0']);
    assert.match(lines.join('\n'), /image app:1 \(sha256:[0-9a-f]{64}\) brought from node n-good/);
  });

  void it('an archive that is not what its manifest names imports nothing: IMAGE_NOT_FOUND says why; none has it: false', async () => {
    const img = makeImage([await makeTar([{ name: 'hello', content: 'hello\n' }])]);
    const liar = await peer('n-liar', new Map([['app:1', await ociArchive(tampered(img), 'app:1')]]));
    const { store, dir } = openStore();
    const peers = new ImagePeers(
      nodesOf([liar.view]),
      (input) => importArchive(store, input),
      () => undefined,
    );
    const err = await peers.fetch('app:1').catch((e: unknown) => e);
    assert.equal(code(err), 'IMAGE_NOT_FOUND');
    assert.match((err as Error).message, /node n-liar sent an image that did not import \(.*has digest/);
    assert.deepEqual(await store.list(), []);
    assert.deepEqual(readdirSync(join(dir, 'images', 'blobs', 'sha256')), []);
    assert.deepEqual(readdirSync(join(dir, 'images', 'tmp')), []);
    assert.equal(await peers.fetch('other:1'), false);
  });
});
