/**
 * Submit a job: its TOML spec in the code editor, and attachments dropped on the page. Each file
 * goes to the blob store as it is dropped (POST /v1/blobs, unpinned: the job's reference holds
 * it, and one never submitted is collected after the grace period) and becomes a `cas:` input
 * at the destination given, unpacked there if asked (a tar, gzip/xz/zstd).
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { api, post } from '../../api';
import { CodeEditor } from '../../components/CodeEditor';
import { DropZone } from '../../components/DropZone';
import { bytes } from '../../components/format';
import { ErrorBox } from '../../components/ui';
import type { ExtraInput, JobInfo } from './types';

const TEMPLATE = `name = "hello"
type = "batch"

[run]
command = "ls -l; echo done > out.txt"
timeout = "1m"

[[artifacts]]
path = "out.txt"
name = "out"
`;

interface Attachment {
  key: number;
  file: File;
  dest: string;
  unpack: boolean;
  state: 'uploading' | 'ready' | 'failed';
  digest?: string;
  error?: unknown;
}

let nextKey = 1;

export function Submit(props: { onSubmitted: (job: JobInfo) => void }): JSX.Element {
  const [toml, setToml] = useState(TEMPLATE);
  const [files, setFiles] = useState<Attachment[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);

  const update = (key: number, patch: Partial<Attachment>): void =>
    setFiles((fs) => fs.map((f) => (f.key === key ? { ...f, ...patch } : f)));

  const add = (dropped: File[]): void => {
    for (const file of dropped) {
      const a: Attachment = { key: nextKey++, file, dest: file.name, unpack: false, state: 'uploading' };
      setFiles((fs) => [...fs, a]);
      api<{ digest: string }>('POST', '/v1/blobs', { body: file, type: 'application/octet-stream', query: { pin: 0 } }).then(
        (b) => update(a.key, { state: 'ready', digest: b.digest }),
        (e: unknown) => update(a.key, { state: 'failed', error: e }),
      );
    }
  };

  const uploading = files.some((f) => f.state === 'uploading');
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const inputs: ExtraInput[] = files
        .filter((f) => f.state === 'ready' && f.digest)
        .map((f) => ({ source: `cas:${f.digest ?? ''}`, dest: f.dest, ...(f.unpack ? { unpack: true } : {}) }));
      const job = await post<JobInfo>('/v1/jobs', inputs.length ? { toml, inputs } : { toml });
      setFiles([]);
      props.onSubmitted(job);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form class="stack" onSubmit={(e) => void submit(e)} aria-label="Submit a job">
      <CodeEditor id="job-spec" label="Job spec (TOML)" language="toml" text={toml} onChange={setToml} />
      <DropZone id="job-files" label="Attachments (inputs)" onFiles={add} />
      {files.length > 0 && (
        <div class="table-scroll">
          <table aria-label="Attachments">
            <thead>
              <tr>
                <th>File</th>
                <th class="num">Size</th>
                <th>Upload</th>
                <th>Destination</th>
                <th>Unpack</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {files.map((f) => (
                <tr key={f.key}>
                  <td>{f.file.name}</td>
                  <td class="num">{bytes(f.file.size)}</td>
                  <td>
                    {f.state === 'ready' ? (
                      <code title={f.digest}>{f.digest?.slice(0, 19)}…</code>
                    ) : f.state === 'failed' ? (
                      <ErrorBox error={f.error} />
                    ) : (
                      <span class="badge warn">uploading…</span>
                    )}
                  </td>
                  <td>
                    <input
                      aria-label={`Destination of ${f.file.name}`}
                      value={f.dest}
                      onInput={(e) => update(f.key, { dest: e.currentTarget.value })}
                    />
                  </td>
                  <td>
                    <input
                      type="checkbox"
                      aria-label={`Unpack ${f.file.name} (a tar) at its destination`}
                      checked={f.unpack}
                      onChange={(e) => update(f.key, { unpack: e.currentTarget.checked })}
                    />
                  </td>
                  <td>
                    <button type="button" class="ghost" onClick={() => setFiles((fs) => fs.filter((x) => x.key !== f.key))}>
                      Remove
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <ErrorBox error={error} />
      <div class="row">
        <button type="submit" class="primary" disabled={busy || uploading || !toml.trim()}>
          {uploading ? 'Uploading…' : 'Submit'}
        </button>
        <span class="muted">
          Inputs from files land at their destination, relative to the working directory; see the README's job spec.
        </span>
      </div>
    </form>
  );
}
