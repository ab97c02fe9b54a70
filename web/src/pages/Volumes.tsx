/**
 * Volumes: named storage that outlives sandboxes (made by `--volume NAME:/path` on create), with
 * the sandboxes using each; remove one nobody mounts. Refreshed on sandbox events.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, seg } from '../api';
import { isType, useEvents } from '../events';
import { Ago } from '../components/Ago';
import { type Column, Table } from '../components/Table';
import { Badge, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../components/ui';
import { href, type PageProps } from '../pages';
import '../components/extras.css';

interface VolumeInfo {
  name: string;
  createdAt: string;
  usedBy: string[];
}

export default function Volumes(_props: PageProps): JSX.Element {
  const list = useLoad((signal) => get<{ volumes: VolumeInfo[] }>('/v1/volumes', undefined, signal));
  const reload = useThrottled(list.reload, 500);
  useEvents((e) => {
    if (isType(e, 'sandbox.created', 'sandbox.destroyed')) reload();
  });
  const [use, setUse] = useState('');
  const [error, setError] = useState<unknown>(undefined);

  const rows = (list.data?.volumes ?? []).filter((v) => !use || (use === 'used') === v.usedBy.length > 0);
  const columns: Column<VolumeInfo>[] = [
    { key: 'name', label: 'Name', sort: (v) => v.name },
    {
      key: 'state',
      label: 'State',
      sort: (v) => v.usedBy.length,
      render: (v) => <Badge value={v.usedBy.length ? 'active' : 'idle'} />,
    },
    {
      key: 'usedBy',
      label: 'Mounted by',
      text: (v) => v.usedBy.join(' '),
      render: (v) =>
        v.usedBy.length ? (
          <span class="tags">
            {v.usedBy.map((id) => (
              <a key={id} href={href('sandboxes', id)}>
                <code>{id}</code>
              </a>
            ))}
          </span>
        ) : (
          <span class="muted">nobody</span>
        ),
    },
    {
      key: 'createdAt',
      label: 'Created',
      sort: (v) => v.createdAt,
      render: (v) => <Ago time={v.createdAt} />,
    },
    {
      key: 'rm',
      label: '',
      render: (v) => (
        <ConfirmButton
          label="Remove"
          danger
          disabled={v.usedBy.length > 0}
          question={`Remove volume ${v.name} and every file in it?`}
          onConfirm={async () => {
            setError(undefined);
            try {
              await del(`/v1/volumes/${seg(v.name)}`);
              list.reload();
            } catch (e) {
              setError(e);
            }
          }}
        />
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Volumes" />
      <p class="muted">
        A volume is made by the first sandbox that mounts it (<code>realm sandbox create --volume data:/data</code>) and stays
        when sandboxes go.
      </p>
      <ErrorBox error={error ?? list.error} />
      <Table
        label="Volumes"
        rows={rows}
        columns={columns}
        rowKey={(v) => v.name}
        initialSort={{ key: 'name' }}
        empty={list.loading ? 'Loading…' : 'No volumes.'}
        toolbar={
          <div class="row filters">
            <label for="vol-use">Use</label>
            <select id="vol-use" value={use} onChange={(e) => setUse(e.currentTarget.value)}>
              <option value="">any</option>
              <option value="used">mounted</option>
              <option value="unused">not mounted</option>
            </select>
          </div>
        }
      />
    </>
  );
}
