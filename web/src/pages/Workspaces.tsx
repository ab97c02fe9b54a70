/**
 * Workspaces: private clones of a repository in long-lived sandboxes (`realm ws NAME`). The list
 * with each one's sandbox state (filter, search, sort), stop/start its sandbox, open its sandbox
 * page (terminal, files), delete it (the sandbox and the clone; never the repository), and open
 * or resume one from a repository path on the daemon's host. Refreshed on sandbox events.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, post, seg } from '../api';
import { isType, useEvents } from '../events';
import { Ago } from '../components/Ago';
import { CopyButton } from '../components/CopyButton';
import { type Column, Table } from '../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../components/ui';
import { href, type PageProps } from '../pages';
import '../components/extras.css';

interface WorkspaceInfo {
  name: string;
  project: string;
  path: string;
  lastUsedAt: string;
  sandbox: { id: string; status: string; image: string; driver: string; createdAt: string; network: string; allow: string[] };
  node?: string;
}

export default function Workspaces(_props: PageProps): JSX.Element {
  const list = useLoad((signal) => get<{ workspaces: WorkspaceInfo[] }>('/v1/workspaces', undefined, signal));
  const reload = useThrottled(list.reload, 500);
  useEvents((e) => {
    if (isType(e, 'sandbox')) reload();
  });
  const [status, setStatus] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [open, setOpen] = useState(false);

  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    try {
      await fn();
      list.reload();
    } catch (e) {
      setError(e);
    }
  };

  const rows = (list.data?.workspaces ?? []).filter((w) => !status || w.sandbox.status === status);
  const nodes = rows.some((w) => w.node !== undefined);
  const columns: Column<WorkspaceInfo>[] = [
    { key: 'name', label: 'Name', sort: (w) => w.name },
    { key: 'status', label: 'State', sort: (w) => w.sandbox.status, render: (w) => <Badge value={w.sandbox.status} /> },
    { key: 'project', label: 'Project', sort: (w) => w.project, render: (w) => <code title={w.path}>{w.project}</code> },
    {
      key: 'image',
      label: 'Image',
      sort: (w) => `${w.sandbox.image} ${w.sandbox.driver}`,
      render: (w) => `${w.sandbox.image} · ${w.sandbox.driver}`,
    },
    ...(nodes ? [{ key: 'node', label: 'Node', sort: (w: WorkspaceInfo) => w.node ?? '' }] : []),
    {
      key: 'lastUsedAt',
      label: 'Last used',
      sort: (w) => w.lastUsedAt,
      render: (w) => <Ago time={w.lastUsedAt} />,
    },
    {
      key: 'actions',
      label: '',
      render: (w) => (
        <div class="row">
          <a href={href('sandboxes', w.sandbox.id)} title="Terminal and files">
            Open
          </a>
          {w.sandbox.status === 'running' ? (
            <button type="button" onClick={() => void act(() => post(`/v1/sandboxes/${seg(w.sandbox.id)}/stop`))}>
              Stop
            </button>
          ) : (
            <button
              type="button"
              disabled={w.sandbox.status !== 'stopped'}
              onClick={() => void act(() => post(`/v1/sandboxes/${seg(w.sandbox.id)}/start`))}
            >
              Start
            </button>
          )}
          <CopyButton text={`realm ws ${w.name} --fetch`} label="Copy fetch command" />
          <ConfirmButton
            label="Delete"
            danger
            question={`Delete workspace ${w.name}: its sandbox and its clone (${w.path})? Your repository is not touched; fetch the agent's branches first.`}
            onConfirm={() => act(() => del(`/v1/workspaces/${seg(w.name)}`))}
          />
        </div>
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Workspaces">
        <button type="button" class="primary" aria-expanded={open} onClick={() => setOpen((o) => !o)}>
          {open ? 'Close' : 'Open a workspace'}
        </button>
      </PageHeader>
      {open && (
        <Card title="Open a workspace">
          <OpenForm onOpened={() => list.reload()} />
        </Card>
      )}
      <ErrorBox error={error ?? list.error} />
      <Table
        label="Workspaces"
        rows={rows}
        columns={columns}
        rowKey={(w) => w.name}
        initialSort={{ key: 'lastUsedAt', desc: true }}
        empty={list.loading ? 'Loading…' : 'No workspaces: run realm ws NAME in a git repository.'}
        toolbar={
          <div class="row filters">
            <label for="ws-status">State</label>
            <select id="ws-status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
              <option value="">any</option>
              <option>running</option>
              <option>stopped</option>
              <option>lost</option>
            </select>
          </div>
        }
      />
    </>
  );
}

function OpenForm(props: { onOpened: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [repo, setRepo] = useState('');
  const [network, setNetwork] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const [done, setDone] = useState<string | undefined>(undefined);
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setDone(undefined);
    try {
      const w = await post<WorkspaceInfo & { created: boolean }>('/v1/workspaces', {
        name: name.trim(),
        repo: repo.trim(),
        ...(network ? { network } : {}),
      });
      setDone(`${w.created ? 'Created' : 'Resumed'} ${w.name}: a clone at ${w.path}.`);
      props.onOpened();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="row" onSubmit={(e) => void submit(e)}>
      <label for="ws-name">Name</label>
      <input id="ws-name" required maxLength={64} value={name} onInput={(e) => setName(e.currentTarget.value)} />
      <label for="ws-repo">Repository</label>
      <input
        id="ws-repo"
        required
        pattern="/.*"
        title="an absolute path inside a git repository on the daemon's host"
        placeholder="/home/me/project"
        value={repo}
        onInput={(e) => setRepo(e.currentTarget.value)}
      />
      <label for="ws-network">Network</label>
      <select id="ws-network" value={network} onChange={(e) => setNetwork(e.currentTarget.value)}>
        <option value="">allow-list (default)</option>
        <option value="none">none</option>
        <option value="all">all</option>
      </select>
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Cloning…' : 'Open'}
      </button>
      <ErrorBox error={error} />
      {done && (
        <p role="status" class="muted">
          {done}
        </p>
      )}
    </form>
  );
}
