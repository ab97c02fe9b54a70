/**
 * Images on the daemon: list, inspect, remove, prune, import a tarball, export one, pull from a
 * registry with progress.
 *
 * @example
 *   const c = new Client();
 *   await c.images.pull('127.0.0.1:5000/tools/busybox:1', { onProgress: (p) => console.log(p) });
 *   const sb = await Sandbox.create({ image: '127.0.0.1:5000/tools/busybox:1' });
 */
import type { Client } from './client.js';
import { errorFromBody } from './errors.js';
import { readSse } from './sse.js';

/** One image: its names, manifest digest and sizes. */
export interface ImageInfo {
  names: string[];
  digest: string;
  /** Compressed size of its config and layers. */
  size: number;
  /** Bytes of file content once unpacked. */
  unpackedSize: number;
  layers: number;
  createdAt: string;
  /** `import`, `pull`, `rootfs`, or `build` (built from a recipe; `images.built()` lists those with their recipe). */
  source: string;
}

export interface ImageDetail extends ImageInfo {
  manifest: {
    config: { digest: string; size: number; mediaType: string };
    layers: { digest: string; size: number; mediaType: string }[];
  };
  config: { architecture?: string; os?: string; created?: string; config?: Record<string, unknown> | null };
  rootfs: string;
}

/** Progress of a pull, per layer (bytes so far of total), or a status line. */
export type ImageProgress =
  | {
      type: 'layer';
      phase: 'download' | 'exists' | 'unpack';
      digest: string;
      index: number;
      count: number;
      bytes: number;
      total: number;
    }
  | { type: 'status'; message: string };

export interface PullOptions {
  /** Allow plain http to a registry not on loopback. */
  insecure?: boolean;
  username?: string;
  password?: string;
  onProgress?: (p: ImageProgress) => void;
  signal?: AbortSignal;
}

const enc = encodeURIComponent;

export class Images {
  constructor(private readonly client: Client) {}

  async list(): Promise<ImageInfo[]> {
    return (await this.client.request<{ images: ImageInfo[] }>('GET', '/v1/images')).images;
  }

  /** `ref`: NAME, NAME:TAG or sha256:…. */
  inspect(ref: string): Promise<ImageDetail> {
    return this.client.request<ImageDetail>('GET', `/v1/images/${enc(ref)}`);
  }

  /** Remove a name; refused with IMAGE_IN_USE while a sandbox uses the image. */
  remove(ref: string): Promise<{ removed: string[] }> {
    return this.client.request<{ removed: string[] }>('DELETE', `/v1/images/${enc(ref)}`);
  }

  /** Remove blobs and unpacked roots nothing uses. */
  prune(): Promise<{ blobs: number; unpacked: number; bytes: number }> {
    return this.client.request('POST', '/v1/images/prune');
  }

  /**
   * Import an OCI archive or `docker save` tarball. `data` may be bytes or a stream (sent as it
   * is read, never buffered whole); `name` names an image the archive leaves unnamed.
   */
  async import(
    data: Uint8Array | ReadableStream<Uint8Array>,
    opts: { name?: string; signal?: AbortSignal } = {},
  ): Promise<{ names: string[]; digest: string }[]> {
    const q = opts.name ? `?name=${enc(opts.name)}` : '';
    const res = await this.raw('POST', `/v1/images/import${q}`, data, opts.signal);
    return ((await res.json()) as { images: { names: string[]; digest: string }[] }).images;
  }

  /** The image as an OCI archive (a tar stream). */
  async export(ref: string, signal?: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const res = await this.raw('GET', `/v1/images/${enc(ref)}/export`, undefined, signal);
    if (!res.body) throw errorFromBody(500, { error: { code: 'INTERNAL', message: 'the export sent no body' } });
    return res.body;
  }

  /** Pull from a registry; resolves with the image once it is stored and unpacked. */
  async pull(ref: string, opts: PullOptions = {}): Promise<{ names: string[]; digest: string }> {
    const { onProgress, signal, ...body } = opts;
    const res = await this.client.send('POST', '/v1/images/pull', { ref, ...body }, signal);
    if (!res.body) throw errorFromBody(500, undefined);
    for await (const m of readSse(res.body)) {
      const data = JSON.parse(m.data) as unknown;
      if (m.event === 'progress') onProgress?.(data as ImageProgress);
      else if (m.event === 'done') return data as { names: string[]; digest: string };
      else if (m.event === 'error') throw errorFromBody(502, data);
    }
    throw errorFromBody(502, { error: { code: 'IMAGE_PULL_FAILED', message: 'the pull stream ended without a result' } });
  }

  /** A request with a raw (possibly streamed) tar body. */
  private raw(
    method: string,
    path: string,
    body: Uint8Array | ReadableStream<Uint8Array> | undefined,
    signal?: AbortSignal,
  ): Promise<Response> {
    return this.client.sendRaw(
      method,
      path,
      body as BodyInit | undefined,
      body !== undefined ? 'application/x-tar' : undefined,
      signal,
    );
  }
}
