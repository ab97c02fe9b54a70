/**
 * Nodes: every node of the cluster (a lone daemon lists itself) with state, tags, drivers,
 * capacity and load; drain, tag, forget a retired node and invite a new one (root). Below, the
 * node that answered: version, drivers with why one is missing, what the operator opened.
 * Refreshed on node events, and the one list every 15 s while visible (load figures move).
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { del, get, me, post, seg } from '../api';
import { isType, useEvents } from '../events';
import { bytes, localTime } from '../components/format';
import { CopyButton } from '../components/CopyButton';
import { type Column, Table } from '../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../components/ui';
import type { PageProps } from '../pages';
import { NodeInfoCard, type NodeInfo } from './nodes/NodeInfoCard';
import { TagEditor } from './nodes/TagEditor';
import '../components/extras.css';

export interface ClusterNode {
  id: string;
  address: string;
  tags: string[];
  state: 'up' | 'down' | 'draining';
  fenced: boolean;
  self: boolean;
  joinedAt: string;
  report: {
    version: string;
    platform: string;
    hostname: string;
    drivers: string[];
    capacity: { cpus: number; memoryBytes: number; sandboxes: number };
    load: { sandboxes: number; loadAvg1: number };
    startedAt: string;
  } | null;
}

export default function Nodes(_props: PageProps): JSX.Element {
  const list = useLoad((signal) => get<{ nodes: ClusterNode[] }>('/v1/nodes', undefined, signal));
  const self = useLoad((signal) => get<NodeInfo>('/v1/node', undefined, signal));
  const reload = useThrottled(list.reload, 500);
  useEvents((e) => {
    if (isType(e, 'node')) reload();
  });
  useEffect(() => {
    const t = setInterval(() => {
      if (document.visibilityState === 'visible') reload();
    }, 15_000);
    return () => clearInterval(t);
  }, [reload]);
  const [state, setState] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const [invite, setInvite] = useState<{ token: string; expiresAt: string } | undefined>(undefined);
  const admin = me.value?.admin === true;
  const clustered = self.data?.cluster?.clustered === true;

  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    try {
      await fn();
      list.reload();
    } catch (e) {
      setError(e);
    }
  };

  const rows = (list.data?.nodes ?? []).filter((n) => !state || (state === 'fenced' ? n.fenced : n.state === state));
  const columns: Column<ClusterNode>[] = [
    {
      key: 'id',
      label: 'Node',
      sort: (n) => n.id,
      text: (n) => `${n.id} ${n.address} ${n.report?.hostname ?? ''}`,
      render: (n) => (
        <>
          <code>{n.id}</code>
          {n.self && <span class="muted"> (this one)</span>}
          <div class="muted">
            {n.report ? `${n.report.hostname} · ` : ''}
            {n.address}
          </div>
        </>
      ),
    },
    {
      key: 'state',
      label: 'State',
      sort: (n) => n.state,
      render: (n) => (
        <>
          <Badge value={n.state} />
          {n.fenced && <Badge value="fenced" />}
        </>
      ),
    },
    {
      key: 'tags',
      label: 'Tags',
      text: (n) => n.tags.join(' '),
      render: (n) => (
        <TagEditor
          node={n.id}
          tags={n.tags}
          editable={admin}
          onChange={(change) => act(() => post(`/v1/nodes/${seg(n.id)}/tags`, change))}
        />
      ),
    },
    {
      key: 'load',
      label: 'Sandboxes',
      numeric: true,
      sort: (n) => n.report?.load.sandboxes ?? -1,
      render: (n) => {
        if (!n.report) return '—';
        const { load, capacity } = n.report;
        const share = capacity.sandboxes ? load.sandboxes / capacity.sandboxes : 0;
        return (
          <span title={`${load.sandboxes} of ${capacity.sandboxes}`}>
            {load.sandboxes} / {capacity.sandboxes}
            <span class="bar" role="presentation">
              <span style={{ width: `${Math.min(100, share * 100)}%` }} />
            </span>
          </span>
        );
      },
    },
    {
      key: 'cpu',
      label: 'Load (1 min)',
      numeric: true,
      sort: (n) => (n.report ? n.report.load.loadAvg1 / Math.max(1, n.report.capacity.cpus) : -1),
      render: (n) => (n.report ? `${n.report.load.loadAvg1.toFixed(2)} / ${n.report.capacity.cpus} cpus` : '—'),
    },
    {
      key: 'memory',
      label: 'Memory',
      numeric: true,
      sort: (n) => n.report?.capacity.memoryBytes ?? 0,
      render: (n) => bytes(n.report?.capacity.memoryBytes),
    },
    {
      key: 'drivers',
      label: 'Drivers · version',
      text: (n) => `${n.report?.drivers.join(' ') ?? ''} ${n.report?.version ?? ''}`,
      render: (n) => (
        <span title={`joined ${localTime(n.joinedAt)}`}>
          {n.report ? `${n.report.drivers.join(', ')} · ${n.report.version}` : '—'}
        </span>
      ),
    },
    {
      key: 'actions',
      label: '',
      render: (n) => (
        <div class="row">
          {n.state === 'draining' ? (
            <button
              type="button"
              disabled={!admin}
              onClick={() => void act(() => post(`/v1/nodes/${seg(n.id)}/drain`, { draining: false }))}
            >
              Undrain
            </button>
          ) : (
            <ConfirmButton
              label="Drain"
              disabled={!admin || n.state === 'down'}
              question={`Place no new work on ${n.id}? What runs there goes on.`}
              onConfirm={() => act(() => post(`/v1/nodes/${seg(n.id)}/drain`, { draining: true }))}
            />
          )}
          {n.state === 'down' && (
            <ConfirmButton
              label="Forget"
              danger
              disabled={!admin}
              question={`Forget node ${n.id}? Its lost sandboxes are noted.`}
              onConfirm={() => act(() => del(`/v1/nodes/${seg(n.id)}`))}
            />
          )}
        </div>
      ),
    },
  ];

  return (
    <>
      <PageHeader title="Nodes">
        {clustered && (
          <button
            type="button"
            disabled={!admin}
            title="A one-time token for realm serve --join"
            onClick={() =>
              void act(async () =>
                setInvite(await post<{ token: string; expiresAt: string }>('/v1/cluster/invites', { ttl: '1h' })),
              )
            }
          >
            Invite a node
          </button>
        )}
      </PageHeader>
      {!admin && <p class="muted">Only root (the admin token) drains, tags and invites nodes.</p>}
      {invite && (
        <div class="secret" role="status">
          <p>
            Invite for one new node, valid until {localTime(invite.expiresAt)} — shown this once. On the new node:{' '}
            <code>realm serve --cluster … --join TOKEN</code>
          </p>
          <div class="row">
            <code class="secret-value" id="invite-token">
              {invite.token}
            </code>
            <CopyButton text={invite.token} label="Copy invite" selectId="invite-token" />
            <button type="button" class="ghost" onClick={() => setInvite(undefined)}>
              Done
            </button>
          </div>
        </div>
      )}
      <ErrorBox error={error ?? list.error} />
      <Table
        label="Nodes"
        rows={rows}
        columns={columns}
        rowKey={(n) => n.id}
        initialSort={{ key: 'id' }}
        empty={list.loading ? 'Loading…' : 'No nodes.'}
        toolbar={
          <div class="row filters">
            <label for="node-state">State</label>
            <select id="node-state" value={state} onChange={(e) => setState(e.currentTarget.value)}>
              <option value="">any</option>
              <option>up</option>
              <option>draining</option>
              <option>down</option>
              <option>fenced</option>
            </select>
          </div>
        }
      />
      <Card title="This node">
        <ErrorBox error={self.error} />
        {self.data && <NodeInfoCard info={self.data} />}
      </Card>
    </>
  );
}
