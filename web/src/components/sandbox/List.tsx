/** The sandbox list: filters (label, state, driver), search, sort, jump to an id, create, bulk destroy. */
import type { JSX } from 'preact';
import { useRef, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import type { SandboxInfo } from '@realm/sdk';
import { del, get, messageOf, post, seg } from '../../api';
import { isType, useEvents } from '../../events';
import { href } from '../../pages';
import { bytes } from '../format';
import { Ago } from '../Ago';
import { Table } from '../Table';
import { Badge, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../ui';

const STATES = ['creating', 'running', 'stopped', 'destroying', 'lost'];
const DRIVERS = ['namespace', 'gvisor', 'microvm', 'wasm'];

/** A form field's text (a file input would give a File: none here). */
const text = (v: FormDataEntryValue | null): string => (typeof v === 'string' ? v.trim() : '');

function CreateDialog(props: { onCreated: (id: string) => void }): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    const body: Record<string, unknown> = {};
    for (const k of ['image', 'driver', 'name', 'memory', 'ttl', 'network']) {
      const v = text(f.get(k));
      if (v) body[k] = v;
    }
    const labels = text(f.get('labels'));
    if (labels)
      body.labels = Object.fromEntries(
        labels.split(/[,\s]+/).map((kv) => {
          const i = kv.indexOf('=');
          return i > 0 ? [kv.slice(0, i), kv.slice(i + 1)] : [kv, ''];
        }),
      );
    setBusy(true);
    setError(undefined);
    try {
      const sb = await post<SandboxInfo>('/v1/sandboxes', body);
      ref.current?.close();
      props.onCreated(sb.id);
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" class="primary" onClick={() => ref.current?.showModal()}>
        New sandbox
      </button>
      <dialog ref={ref} aria-labelledby="create-title">
        <form class="form" onSubmit={(e) => void submit(e)}>
          <h2 id="create-title">New sandbox</h2>
          <label for="c-image">Image</label>
          <input id="c-image" name="image" placeholder="host" />
          <label for="c-driver">Driver</label>
          <select id="c-driver" name="driver">
            <option value="">the node's default</option>
            {DRIVERS.map((d) => (
              <option key={d}>{d}</option>
            ))}
          </select>
          <label for="c-name">Name</label>
          <input id="c-name" name="name" placeholder="optional" />
          <label for="c-memory">Memory</label>
          <input id="c-memory" name="memory" placeholder="e.g. 512m" />
          <label for="c-ttl">Time to live</label>
          <input id="c-ttl" name="ttl" placeholder="1h (0: none)" />
          <label for="c-network">Network</label>
          <select id="c-network" name="network">
            <option value="">none</option>
            <option value="all">all</option>
          </select>
          <label for="c-labels">Labels</label>
          <input id="c-labels" name="labels" placeholder="k=v, k2=v2" />
          {error && (
            <p class="error" role="alert">
              {error}
            </p>
          )}
          <div class="row">
            <button type="button" onClick={() => ref.current?.close()}>
              Cancel
            </button>
            <button type="submit" class="primary" disabled={busy}>
              {busy ? 'Creating…' : 'Create'}
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}

export function SandboxList(): JSX.Element {
  const loc = useLocation();
  const [label, setLabel] = useState(loc.query.label ?? '');
  const [state, setState] = useState(loc.query.state ?? '');
  const [driver, setDriver] = useState(loc.query.driver ?? '');
  const [jump, setJump] = useState('');
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [bulkError, setBulkError] = useState<unknown>(undefined);
  const labelOk = label === '' || /^[^=\s]+=\S*$/.test(label.trim());
  const list = useLoad(
    (signal) =>
      get<{ sandboxes: SandboxInfo[] }>(
        '/v1/sandboxes',
        { label: labelOk ? label.trim() : undefined, status: state || undefined },
        signal,
      ),
    [labelOk ? label : '', state],
  );
  const refresh = useThrottled(list.reload, 700);
  useEvents((e) => {
    if (isType(e, 'sandbox')) refresh();
  });
  const rows = (list.data?.sandboxes ?? []).filter((s) => !driver || s.driver === driver);

  const destroy = async (): Promise<void> => {
    setBulkError(undefined);
    const ids = [...selected];
    const results = await Promise.allSettled(ids.map((id) => del(`/v1/sandboxes/${seg(id)}`)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length)
      setBulkError(new Error(`${failed.length} of ${ids.length} not destroyed: ${messageOf(failed[0]?.reason)}`));
    setSelected(new Set());
    list.reload();
  };

  return (
    <>
      <PageHeader title="Sandboxes">
        <form
          class="row"
          role="search"
          onSubmit={(e) => {
            e.preventDefault();
            if (jump.trim()) loc.route(href('sandboxes', jump.trim()));
          }}
        >
          <label for="jump" class="sr-only">
            Jump to sandbox id or name
          </label>
          <input id="jump" placeholder="Jump to id or name" value={jump} onInput={(e) => setJump(e.currentTarget.value)} />
          <button type="submit">Go</button>
        </form>
        <CreateDialog onCreated={(id) => loc.route(href('sandboxes', id))} />
      </PageHeader>
      <ErrorBox error={list.error ?? bulkError} />
      <Table
        label="Sandboxes"
        rows={rows}
        rowKey={(s) => s.id}
        selected={selected}
        onSelect={setSelected}
        initialSort={{ key: 'created', desc: true }}
        empty={
          driver || state || label
            ? 'No sandbox matches these filters.'
            : 'No sandboxes. Create one with “New sandbox” or `realm sandbox create`.'
        }
        toolbar={
          <>
            <label class="inline">
              Label{' '}
              <input
                placeholder="k=v"
                value={label}
                aria-invalid={!labelOk}
                onInput={(e) => setLabel(e.currentTarget.value)}
                size={12}
              />
            </label>
            <label class="inline">
              State{' '}
              <select value={state} onChange={(e) => setState(e.currentTarget.value)}>
                <option value="">any</option>
                {STATES.map((s) => (
                  <option key={s}>{s}</option>
                ))}
              </select>
            </label>
            <label class="inline">
              Driver{' '}
              <select value={driver} onChange={(e) => setDriver(e.currentTarget.value)}>
                <option value="">any</option>
                {DRIVERS.map((d) => (
                  <option key={d}>{d}</option>
                ))}
              </select>
            </label>
            <ConfirmButton
              label={`Destroy ${selected.size || ''} selected`}
              question={`Destroy ${selected.size} sandbox${selected.size === 1 ? '' : 'es'}? Their files go with them (volumes stay).`}
              danger
              disabled={selected.size === 0}
              onConfirm={destroy}
            />
          </>
        }
        columns={[
          {
            key: 'id',
            label: 'Sandbox',
            sort: (s) => s.name ?? s.id,
            text: (s) => `${s.id} ${s.name ?? ''}`,
            render: (s) => (
              <a href={href('sandboxes', s.id)}>
                <span class="mono">{s.id}</span>
                {s.name && <span class="muted"> {s.name}</span>}
              </a>
            ),
          },
          { key: 'status', label: 'State', sort: (s) => s.status, render: (s) => <Badge value={s.status} /> },
          { key: 'driver', label: 'Driver', sort: (s) => s.driver },
          { key: 'image', label: 'Image', sort: (s) => s.image },
          {
            key: 'memory',
            label: 'Memory',
            numeric: true,
            sort: (s) => s.limits.memoryBytes,
            render: (s) => bytes(s.limits.memoryBytes),
          },
          {
            key: 'labels',
            label: 'Labels',
            text: (s) =>
              Object.entries(s.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(' '),
            render: (s) =>
              Object.entries(s.labels).map(([k, v]) => (
                <code key={k} class="tag">
                  {k}={v}
                </code>
              )),
          },
          {
            key: 'created',
            label: 'Created',
            sort: (s) => s.createdAt,
            render: (s) => <Ago time={s.createdAt} />,
          },
          {
            key: 'expires',
            label: 'Expires',
            sort: (s) => s.expiresAt ?? '~',
            render: (s) => <Ago time={s.expiresAt} never="never" />,
          },
          ...(rows.some((s) => s.node) ? [{ key: 'node', label: 'Node', sort: (s: SandboxInfo) => s.node ?? '' }] : []),
        ]}
      />
    </>
  );
}
