/**
 * Test images made from scratch with tar-stream (layers with whiteouts, opaque directories,
 * links and a static busybox), written as OCI archives, `docker save` tarballs or layouts, and a
 * real registry (Debian's docker-registry) to push them to.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export const REGISTRY_BIN = '/usr/bin/docker-registry';
export const BUSYBOX = '/bin/busybox';

export interface Entry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  linkname?: string;
}

/** A tar of these entries, in order. */
export async function makeTar(entries: Entry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = type === 'file' ? Buffer.from(e.content ?? '') : undefined;
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}),
      ...(body ? { size: body.length } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => (err ? reject(err) : resolve());
      if (body) p.entry(header, body, cb);
      else p.entry(header, cb);
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

export const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Blob {
  digest: string;
  data: Buffer;
  mediaType: string;
}

export interface TestImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Blob;
  layers: Blob[];
}

/** An OCI image of these layer tars (gzip'd when asked), config with matching diff_ids. */
export function makeImage(layerTars: Buffer[], opts: { gzip?: boolean; config?: object } = {}): TestImage {
  const layers = layerTars.map((t) => {
    const data = opts.gzip ? gzipSync(t) : t;
    return {
      digest: digestOf(data),
      data,
      mediaType: opts.gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar',
    };
  });
  const configData = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: layerTars.map(digestOf) },
      ...opts.config,
    }),
  );
  const config = { digest: digestOf(configData), data: configData, mediaType: 'application/vnd.oci.image.config.v1+json' };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: config.mediaType, digest: config.digest, size: configData.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length })),
    }),
  );
  return { manifest, manifestDigest: digestOf(manifest), config, layers };
}

/** Three layers: busybox and links; then a whiteout and an opaque directory; then more files. */
export async function busyboxLayers(): Promise<Buffer[]> {
  const l1 = await makeTar([
    { name: 'bin/', type: 'directory' },
    { name: 'bin/busybox', content: readFileSync(BUSYBOX), mode: 0o4755 },
    { name: 'bin/sh', type: 'symlink', linkname: 'busybox' },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/gone', content: 'removed by layer 2\n' },
    { name: 'etc/secret', content: 'root only\n', mode: 0o600 },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/old', content: 'hidden by the opaque marker\n' },
    { name: 'etc/hard', type: 'link', linkname: 'etc/secret' },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device' },
  ]);
  const l2 = await makeTar([
    { name: 'etc/.wh.gone' },
    { name: 'nowhere/.wh.thing' },
    { name: 'opq/new', content: 'kept\n' },
    { name: 'opq/.wh..wh..opq' },
    { name: 'etc/os-release', content: 'NAME=realm-test\n' },
  ]);
  const l3 = await makeTar([
    { name: './usr/', type: 'directory' },
    { name: './usr/hello', content: 'hello from layer 3\n' },
  ]);
  return [l1, l2, l3];
}

/** An OCI archive (tar of a layout) holding the image under `name`. */
export async function ociArchive(img: TestImage, name?: string, extra: Entry[] = []): Promise<Buffer> {
  const index = {
    schemaVersion: 2,
    manifests: [
      {
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: img.manifestDigest,
        size: img.manifest.length,
        ...(name ? { annotations: { 'io.containerd.image.name': name } } : {}),
      },
    ],
  };
  const blobs = [{ digest: img.manifestDigest, data: img.manifest }, img.config, ...img.layers];
  return makeTar([
    { name: 'oci-layout', content: '{"imageLayoutVersion":"1.0.0"}' },
    { name: 'index.json', content: JSON.stringify(index) },
    ...blobs.map((b) => ({ name: `blobs/sha256/${b.digest.slice(7)}`, content: b.data })),
    ...extra,
  ]);
}

/** A `docker save` tarball (the classic layout: <id>/layer.tar, <config>.json, manifest.json). */
export async function dockerSave(layerTars: Buffer[], repoTag: string): Promise<Buffer> {
  const img = makeImage(layerTars);
  const ids = layerTars.map((t) => digestOf(t).slice(7));
  return makeTar([
    { name: `${img.config.digest.slice(7)}.json`, content: img.config.data },
    ...ids.flatMap((id, i) => [
      { name: `${id}/`, type: 'directory' as const },
      { name: `${id}/layer.tar`, content: layerTars[i] },
    ]),
    {
      name: 'manifest.json',
      content: JSON.stringify([
        { Config: `${img.config.digest.slice(7)}.json`, RepoTags: [repoTag], Layers: ids.map((id) => `${id}/layer.tar`) },
      ]),
    },
  ]);
}

export interface RunningRegistry {
  host: string;
  stop(): Promise<void>;
}

/** Debian's docker-registry on 127.0.0.1:<free port> with a temporary storage directory. */
export async function startRegistry(): Promise<RunningRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'realm-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  mkdirSync(join(dir, 'storage'));
  writeFileSync(
    config,
    `version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: ${join(dir, 'storage')}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:${port}\n`,
  );
  const child: ChildProcess = spawn(REGISTRY_BIN, ['serve', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (c: Buffer) => void (err += c.toString()));
  const host = `127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${host}/v2/`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) break;
    if (child.exitCode !== null || i > 100) {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      throw new Error(`docker-registry did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Push an image to a registry with the distribution API (monolithic blob uploads). */
export async function push(
  base: string,
  repo: string,
  tag: string,
  img: TestImage,
  headers: Record<string, string> = {},
): Promise<void> {
  for (const b of [img.config, ...img.layers]) {
    const start = await fetch(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST', headers });
    if (start.status !== 202) throw new Error(`upload start: HTTP ${start.status}`);
    const loc = new URL(start.headers.get('location')!, base);
    loc.searchParams.set('digest', b.digest);
    const put = await fetch(loc, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body: b.data,
    });
    if (put.status !== 201) throw new Error(`upload ${b.digest}: HTTP ${put.status} ${await put.text()}`);
  }
  const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, {
    method: 'PUT',
    headers: { ...headers, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    body: img.manifest,
  });
  if (res.status !== 201) throw new Error(`manifest: HTTP ${res.status} ${await res.text()}`);
}

/**
 * An auth front for a registry. bearer: /token wants Basic user:pass, /v2/* wants the token it
 * issued. basic: /v2/* wants Basic user:pass itself.
 */
export async function startTokenProxy(
  upstream: string,
  user: string,
  pass: string,
  mode: 'bearer' | 'basic' = 'bearer',
): Promise<{ url: string; host: string; tokenRequests: string[]; close(): Promise<void> }> {
  const token = `tok-${Math.random().toString(36).slice(2)}`;
  const tokenRequests: string[] = [];
  let self = '';
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', self);
    if (url.pathname === '/token') {
      tokenRequests.push(url.search);
      if (req.headers.authorization !== `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token }));
      return;
    }
    if (mode === 'basic' && req.headers.authorization !== `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="test-registry"' }).end();
      return;
    }
    if (mode === 'bearer' && req.headers.authorization !== `Bearer ${token}`) {
      const repo = url.pathname.split('/').slice(2, -2).join('/');
      // Like real registries: /v2/ gets a challenge without a scope, repository paths with one.
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="${self}/token",service="test-registry"${repo ? `,scope="repository:${repo}:pull"` : ''}`,
          'content-type': 'application/json',
        })
        .end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return;
    }
    const up = httpRequest(
      `http://${upstream}${req.url ?? '/'}`,
      { method: req.method, headers: { ...req.headers, host: upstream } },
      (ures) => {
        res.writeHead(ures.statusCode ?? 502, ures.headers);
        ures.pipe(res);
      },
    );
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  self = `http://${host}`;
  return {
    url: self,
    host,
    tokenRequests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export const registryAvailable = (): boolean => existsSync(REGISTRY_BIN);
