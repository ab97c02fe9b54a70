/**
 * Services: process services with their replicas and health (filter by health, search, sort),
 * one service's page at /ui/services/<name> (scale, restart, remove, replicas, live logs), and
 * the WebAssembly apps on the gateway (requests, failures, remove).
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { del, get, seg } from '../api';
import { bytes, duration } from '../components/format';
import { Ago } from '../components/Ago';
import { useBelow } from '../components/below';
import { type Column, Table } from '../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad } from '../components/ui';
import { href, type PageProps } from '../pages';
import { useServiceRefresh } from './services/refresh';
import { ServiceDetail } from './services/ServiceDetail';
import { type AppInfo, type ServiceInfo, health } from './services/types';
import '../components/extras.css';

export default function Services(props: PageProps): JSX.Element {
  const name = useBelow('services', props.rest).split('/')[0] ?? '';
  return name ? <ServiceDetail name={name} /> : <ServiceList />;
}

function ServiceList(): JSX.Element {
  const list = useLoad((signal) => get<{ services: ServiceInfo[] }>('/v1/services', undefined, signal));
  const apps = useLoad((signal) => get<{ apps: AppInfo[] }>('/v1/apps', undefined, signal));
  useServiceRefresh(() => {
    list.reload();
    apps.reload();
  });
  const [filter, setFilter] = useState('');
  const [error, setError] = useState<unknown>(undefined);

  const rows = (list.data?.services ?? []).filter((s) => !filter || health(s) === filter);
  const columns: Column<ServiceInfo>[] = [
    { key: 'name', label: 'Name', sort: (s) => s.name, render: (s) => <a href={href('services', s.name)}>{s.name}</a> },
    { key: 'health', label: 'Health', sort: (s) => health(s), render: (s) => <Badge value={health(s)} /> },
    {
      key: 'replicas',
      label: 'Healthy / running / desired',
      numeric: true,
      sort: (s) => s.replicas,
      render: (s) => `${s.healthy} / ${s.running} / ${s.replicas}`,
    },
    { key: 'restarts', label: 'Restarts', numeric: true, sort: (s) => s.restarts, render: (s) => s.restarts },
    { key: 'image', label: 'Image', sort: (s) => s.image },
    { key: 'port', label: 'Port', numeric: true, sort: (s) => s.port, render: (s) => s.port },
    { key: 'visibility', label: 'Visibility', sort: (s) => s.visibility },
    {
      key: 'updatedAt',
      label: 'Updated',
      sort: (s) => s.updatedAt,
      render: (s) => <Ago time={s.updatedAt} />,
    },
    {
      key: 'lastError',
      label: 'Last error',
      text: (s) => s.lastError ?? '',
      render: (s) =>
        s.lastError ? (
          <span class="muted" title={s.lastError}>
            {s.lastError.slice(0, 60)}
          </span>
        ) : (
          ''
        ),
    },
  ];
  const appColumns: Column<AppInfo>[] = [
    { key: 'name', label: 'Name', sort: (a) => a.name },
    { key: 'replicas', label: 'Runners', numeric: true, sort: (a) => a.replicas, render: (a) => a.replicas },
    { key: 'requests', label: 'Requests', numeric: true, sort: (a) => a.stats.requests, render: (a) => a.stats.requests },
    { key: 'failed', label: 'Failed', numeric: true, sort: (a) => a.stats.failed, render: (a) => a.stats.failed },
    {
      key: 'peak',
      label: 'Peak memory',
      numeric: true,
      sort: (a) => a.stats.memoryPeakBytes ?? 0,
      render: (a) => bytes(a.stats.memoryPeakBytes),
    },
    {
      key: 'limits',
      label: 'Limits',
      render: (a) => `${bytes(a.memory)} · ${duration(a.timeoutMs)}${a.fuel ? ` · fuel ${a.fuel}` : ''}`,
    },
    { key: 'visibility', label: 'Visibility', sort: (a) => a.visibility },
    { key: 'size', label: 'Size', numeric: true, sort: (a) => a.size, render: (a) => bytes(a.size) },
    {
      key: 'createdAt',
      label: 'Pushed',
      sort: (a) => a.createdAt,
      render: (a) => <Ago time={a.createdAt} />,
    },
    {
      key: 'rm',
      label: '',
      render: (a) => (
        <ConfirmButton
          label="Remove"
          danger
          question={`Remove app ${a.name} from the gateway?`}
          onConfirm={async () => {
            setError(undefined);
            try {
              await del(`/v1/apps/${seg(a.name)}`);
              apps.reload();
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
      <PageHeader title="Services" />
      <p class="muted">
        Push a service with <code>realm push NAME --image IMG --command CMD --port P</code>; it is served at the gateway's{' '}
        <code>/NAME/</code>.
      </p>
      <ErrorBox error={error ?? list.error} />
      <Table
        label="Services"
        rows={rows}
        columns={columns}
        rowKey={(s) => s.name}
        initialSort={{ key: 'name' }}
        empty={list.loading ? 'Loading…' : 'No services.'}
        toolbar={
          <div class="row filters">
            <label for="svc-health">Health</label>
            <select id="svc-health" value={filter} onChange={(e) => setFilter(e.currentTarget.value)}>
              <option value="">any</option>
              <option>healthy</option>
              <option>degraded</option>
              <option>down</option>
              <option>stopped</option>
            </select>
          </div>
        }
      />
      <Card title="WebAssembly apps">
        <ErrorBox error={apps.error} />
        <Table
          label="Apps"
          rows={apps.data?.apps ?? []}
          columns={appColumns}
          rowKey={(a) => a.name}
          initialSort={{ key: 'name' }}
          empty={apps.loading ? 'Loading…' : 'No apps: realm push NAME --file app.wasm deploys one.'}
        />
      </Card>
    </>
  );
}
