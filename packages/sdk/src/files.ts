/** A sandbox's files. Paths are absolute inside the sandbox, or relative to /home/user. */
import type { Client } from './client.js';
import type { FileInfo } from './types.js';

const q = (params: Record<string, string | undefined>): string => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined) u.set(k, v);
  return `?${u.toString()}`;
};

export class Files {
  private readonly base: string;

  constructor(
    private readonly client: Client,
    sandboxId: string,
  ) {
    this.base = `/v1/sandboxes/${encodeURIComponent(sandboxId)}/files`;
  }

  /** A file's bytes. @example const bytes = await sb.files.read('main.py'); */
  async read(path: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.client.send('GET', `${this.base}${q({ path })}`)).arrayBuffer());
  }

  /** A file as UTF-8 text. */
  async readText(path: string): Promise<string> {
    return new TextDecoder().decode(await this.read(path));
  }

  /**
   * Write a file (made or replaced). `mode` is octal permissions; `parents` makes missing directories.
   * @example await sb.files.write('src/app.py', 'print(1)', { parents: true });
   */
  async write(path: string, data: string | Uint8Array, opts: { mode?: number; parents?: boolean } = {}): Promise<void> {
    const body = typeof data === 'string' ? new TextEncoder().encode(data) : data;
    await this.client.send(
      'PUT',
      `${this.base}${q({ path, mode: opts.mode?.toString(8), parents: opts.parents ? '1' : undefined })}`,
      body,
    );
  }

  async list(path = '/home/user'): Promise<FileInfo[]> {
    return (await this.client.request<{ entries: FileInfo[] }>('GET', `${this.base}/list${q({ path })}`)).entries;
  }

  stat(path: string): Promise<FileInfo> {
    return this.client.request<FileInfo>('GET', `${this.base}/stat${q({ path })}`);
  }

  async mkdir(path: string, opts: { parents?: boolean } = {}): Promise<void> {
    await this.client.request('POST', `${this.base}/mkdir`, { path, parents: opts.parents ?? false });
  }

  /** Remove a file, a link or an empty directory; `recursive` for a whole tree. */
  async remove(path: string, opts: { recursive?: boolean } = {}): Promise<void> {
    await this.client.request('POST', `${this.base}/remove`, { path, recursive: opts.recursive ?? false });
  }

  async move(from: string, to: string): Promise<void> {
    await this.client.request('POST', `${this.base}/move`, { from, to });
  }

  /** Unpack a tar archive into the directory `dest`. */
  async upload(dest: string, tar: Uint8Array): Promise<void> {
    await this.client.sendRaw('PUT', `${this.base}/tar${q({ path: dest })}`, tar as Uint8Array<ArrayBuffer>, 'application/x-tar');
  }

  /** A tar archive of `path` (a directory comes under its own name). */
  async download(path: string): Promise<Uint8Array> {
    return new Uint8Array(await (await this.client.send('GET', `${this.base}/tar${q({ path })}`)).arrayBuffer());
  }
}
