/** The file browser of a sandbox: list a directory, view, upload, download, delete (the files API). */
import type { JSX } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { download, get, messageOf, post, request, seg } from '../../api';
import { bytes } from '../format';
import { Ago } from '../Ago';
import { Table } from '../Table';
import { ErrorBox, useLoad } from '../ui';

interface Entry {
  name: string;
  path: string;
  type: 'file' | 'dir' | 'link' | 'other';
  size: number;
  mode: string;
  mtime: string;
  target?: string;
}

/** What the viewer shows at most (larger files: download them). */
const VIEW_MAX = 512 * 1024;

const parentOf = (p: string): string => p.replace(/\/[^/]+\/?$/, '') || '/';
const join = (dir: string, name: string): string => `${dir.replace(/\/$/, '')}/${name}`;

export function Files(props: { id: string; running: boolean }): JSX.Element {
  const [dir, setDir] = useState('/home/user');
  const [goto, setGoto] = useState('/home/user');
  const [viewing, setViewing] = useState<{ path: string; text: string } | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [status, setStatus] = useState('');
  const input = useRef<HTMLInputElement>(null);
  const base = `/v1/sandboxes/${seg(props.id)}/files`;
  const list = useLoad((signal) => get<{ entries: Entry[] }>(`${base}/list`, { path: dir }, signal), [props.id, dir]);

  const open = (path: string): void => {
    setDir(path);
    setGoto(path);
    setViewing(undefined);
  };
  const act = async (fn: () => Promise<void>): Promise<void> => {
    setError(undefined);
    try {
      await fn();
    } catch (e) {
      setError(e);
    }
  };
  const view = (e: Entry): Promise<void> =>
    act(async () => {
      if (e.size > VIEW_MAX) throw new Error(`${e.name} is ${bytes(e.size)}: download it to read it`);
      const res = await request('GET', base, { query: { path: e.path } });
      setViewing({ path: e.path, text: await res.text() });
    });
  const upload = (files: FileList | null): Promise<void> =>
    act(async () => {
      for (const f of Array.from(files ?? [])) {
        setStatus(`Uploading ${f.name}…`);
        await request('PUT', base, { query: { path: join(dir, f.name) }, body: f, type: 'application/octet-stream' });
      }
      setStatus(files?.length ? `Uploaded ${files.length} file${files.length === 1 ? '' : 's'}.` : '');
      if (input.current) input.current.value = '';
      list.reload();
    });
  const remove = (e: Entry): Promise<void> =>
    act(async () => {
      if (!confirm(`Delete ${e.path}${e.type === 'dir' ? ' and everything in it' : ''}?`)) return;
      await post(`${base}/remove`, { path: e.path, recursive: e.type === 'dir' });
      list.reload();
    });

  if (!props.running) return <p class="muted">Start the sandbox to browse its files.</p>;
  return (
    <div class="split">
      <section aria-label="Files">
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            open(goto.trim() || '/');
          }}
        >
          <label for="dir" class="sr-only">
            Directory
          </label>
          <input id="dir" class="mono" value={goto} size={30} onInput={(e) => setGoto(e.currentTarget.value)} />
          <button type="submit">Open</button>
          <button type="button" onClick={() => open(parentOf(dir))} disabled={dir === '/'}>
            Up
          </button>
          <label class="button-like">
            Upload
            <input
              ref={input}
              type="file"
              multiple
              class="sr-only"
              aria-label="Upload files"
              onChange={(e) => void upload(e.currentTarget.files)}
            />
          </label>
        </form>
        <p class="muted small" role="status">
          {status}
        </p>
        <ErrorBox error={error ?? list.error} />
        <Table
          label={`Files in ${dir}`}
          rows={list.data?.entries ?? []}
          rowKey={(e) => e.path}
          initialSort={{ key: 'name' }}
          empty="Empty directory."
          columns={[
            {
              key: 'name',
              label: 'Name',
              sort: (e) => `${e.type === 'dir' ? 0 : 1}${e.name}`,
              text: (e) => e.name,
              render: (e) =>
                e.type === 'dir' ? (
                  <button type="button" class="link" onClick={() => open(e.path)}>
                    {e.name}/
                  </button>
                ) : e.type === 'file' ? (
                  <button type="button" class="link" onClick={() => void view(e)}>
                    {e.name}
                  </button>
                ) : (
                  <span>
                    {e.name}
                    {e.target && <span class="muted"> → {e.target}</span>}
                  </span>
                ),
            },
            {
              key: 'size',
              label: 'Size',
              numeric: true,
              sort: (e) => e.size,
              render: (e) => (e.type === 'dir' ? '' : bytes(e.size)),
            },
            { key: 'mode', label: 'Mode', render: (e) => <code>{e.mode}</code> },
            {
              key: 'mtime',
              label: 'Modified',
              sort: (e) => e.mtime,
              render: (e) => <Ago time={e.mtime} />,
            },
            {
              key: 'actions',
              label: 'Actions',
              render: (e) => (
                <span class="row">
                  {e.type === 'file' && (
                    <button
                      type="button"
                      aria-label={`Download ${e.name}`}
                      onClick={() => void act(() => download(base, e.name, { path: e.path }))}
                    >
                      Download
                    </button>
                  )}
                  {e.type === 'dir' && (
                    <button
                      type="button"
                      aria-label={`Download ${e.name} as tar`}
                      onClick={() => void act(() => download(`${base}/tar`, `${e.name}.tar`, { path: e.path }))}
                    >
                      Tar
                    </button>
                  )}
                  <button type="button" class="danger" aria-label={`Delete ${e.name}`} onClick={() => void remove(e)}>
                    Delete
                  </button>
                </span>
              ),
            },
          ]}
        />
      </section>
      <section aria-label="Viewer">
        {viewing ? (
          <>
            <div class="row">
              <strong class="mono">{viewing.path}</strong>
              <button type="button" class="ghost" onClick={() => setViewing(undefined)}>
                Close
              </button>
            </div>
            <pre class="log">{viewing.text}</pre>
          </>
        ) : (
          <p class="muted">Choose a file to view it.</p>
        )}
        {error !== undefined && <p class="muted small">{messageOf(error)}</p>}
      </section>
    </div>
  );
}
