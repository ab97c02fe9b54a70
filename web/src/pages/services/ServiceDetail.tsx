/** One process service: its spec, replicas with health, scale, restart, remove, and its logs live. */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, del, get, post, request, seg } from '../../api';
import { bytes, duration } from '../../components/format';
import { Ago } from '../../components/Ago';
import { LogView } from '../../components/LogView';
import { type Column, Table } from '../../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad } from '../../components/ui';
import { href } from '../../pages';
import { useServiceRefresh } from './refresh';
import { type ReplicaInfo, type ServiceInfo, health } from './types';

/** Read a plain-text stream (GET /v1/services/{name}/logs?follow=1) into `onText`. */
async function followText(path: string, onText: (t: string) => void, signal: AbortSignal): Promise<void> {
  const res = await request('GET', path, { query: { follow: 1 }, signal });
  if (!res.body) return;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      onText(value);
    }
  } finally {
    reader.releaseLock();
  }
}

export function ServiceDetail(props: { name: string }): JSX.Element {
  const { route } = useLocation();
  const svc = useLoad((signal) => get<ServiceInfo>(`/v1/services/${seg(props.name)}`, undefined, signal), [props.name]);
  useServiceRefresh(svc.reload);
  const [replicas, setReplicas] = useState<number | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [busy, setBusy] = useState(false);
  useEffect(() => setReplicas(undefined), [props.name]);

  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    setBusy(true);
    try {
      await fn();
      svc.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const s = svc.data;
  if (!s) {
    return (
      <>
        <PageHeader title={`Service ${props.name}`} />
        {svc.error instanceof ApiError && svc.error.code === 'SERVICE_NOT_FOUND' ? (
          <p>
            No service {props.name}. <a href={href('services')}>All services</a>
          </p>
        ) : (
          <ErrorBox error={svc.error} />
        )}
        {svc.loading && <p class="loading">Loading…</p>}
      </>
    );
  }
  const want = replicas ?? s.replicas;
  const columns: Column<ReplicaInfo>[] = [
    { key: 'id', label: 'Replica', sort: (r) => r.id, render: (r) => <code>{r.id}</code> },
    { key: 'node', label: 'Node', sort: (r) => r.node, render: (r) => <code>{r.node}</code> },
    {
      key: 'sandbox',
      label: 'Sandbox',
      sort: (r) => r.sandbox,
      render: (r) => (
        <a href={href('sandboxes', r.sandbox)}>
          <code>{r.sandbox}</code>
        </a>
      ),
    },
    {
      key: 'healthy',
      label: 'Health',
      sort: (r) => (r.healthy ? 1 : 0),
      render: (r) => <Badge value={r.healthy ? 'healthy' : 'starting'} />,
    },
    { key: 'generation', label: 'Generation', numeric: true, sort: (r) => r.generation, render: (r) => r.generation },
    {
      key: 'startedAt',
      label: 'Started',
      sort: (r) => r.startedAt,
      render: (r) => <Ago time={r.startedAt} />,
    },
  ];

  return (
    <>
      <PageHeader title={`Service ${s.name}`}>
        <a href={href('services')}>All services</a>
        <ConfirmButton
          label="Restart"
          question={`Replace every replica of ${s.name}? Old ones go once as many new ones are healthy.`}
          disabled={busy}
          onConfirm={() => act(() => post(`/v1/services/${seg(s.name)}/restart`))}
        />
        <ConfirmButton
          label="Remove"
          danger
          disabled={busy}
          question={`Remove service ${s.name}? Every replica's sandbox goes.`}
          onConfirm={() =>
            act(async () => {
              await del(`/v1/services/${seg(s.name)}`);
              route(href('services'));
            })
          }
        />
      </PageHeader>
      <ErrorBox error={error ?? svc.error} />
      <div class="split">
        <div class="stack">
          <Card title="State">
            <div class="row">
              <Badge value={health(s)} />
              <span>
                {s.healthy} healthy · {s.running} running · {s.replicas} desired · {s.restarts} restarts · generation{' '}
                {s.generation}
              </span>
            </div>
            {s.lastError && <p class="error">{s.lastError}</p>}
            <form
              class="row"
              onSubmit={(e) => {
                e.preventDefault();
                void act(async () => {
                  await post(`/v1/services/${seg(s.name)}/scale`, { replicas: want });
                  setReplicas(undefined);
                });
              }}
            >
              <label for="svc-replicas">Replicas</label>
              <input
                id="svc-replicas"
                type="number"
                min={0}
                max={32}
                value={want}
                onInput={(e) => setReplicas(Number(e.currentTarget.value))}
                style={{ width: '5rem' }}
              />
              <button type="submit" class="primary" disabled={busy || want === s.replicas}>
                Scale
              </button>
            </form>
          </Card>
          <Card title="Spec">
            <dl class="kv">
              <dt>Image</dt>
              <dd>{s.image}</dd>
              <dt>Command</dt>
              <dd>
                <code>{s.command}</code>
              </dd>
              <dt>Port</dt>
              <dd>{s.port}</dd>
              <dt>Limits</dt>
              <dd>
                {bytes(s.memory)} · {s.cpus} cpu · {s.pids} pids
              </dd>
              <dt>Health check</dt>
              <dd>
                {s.health.path ? `GET ${s.health.path}` : 'TCP connect'} every {duration(s.health.intervalMs)} (timeout{' '}
                {duration(s.health.timeoutMs)}, {s.health.threshold} failures)
              </dd>
              <dt>Restart delay</dt>
              <dd>
                {duration(s.restart.delayMs)} doubling to {duration(s.restart.maxDelayMs)}
              </dd>
              <dt>Visibility</dt>
              <dd>{s.visibility}</dd>
              {s.env.length > 0 && (
                <>
                  <dt>Environment</dt>
                  <dd>{s.env.join(', ')}</dd>
                </>
              )}
              {s.tags.length > 0 && (
                <>
                  <dt>Tags</dt>
                  <dd>{s.tags.join(', ')}</dd>
                </>
              )}
              <dt>Updated</dt>
              <dd>
                <Ago time={s.updatedAt} />
              </dd>
            </dl>
          </Card>
          <Table
            label="Replicas"
            rows={s.replicaList}
            columns={columns}
            rowKey={(r) => r.id}
            search={false}
            empty="No replicas."
          />
        </div>
        <Card title="Logs">
          <LogView
            source={s.name}
            label={`Logs of ${s.name}`}
            fileName={`${s.name}.log`}
            follow={(onText, signal) => followText(`/v1/services/${seg(s.name)}/logs`, onText, signal)}
          />
        </Card>
      </div>
    </>
  );
}
