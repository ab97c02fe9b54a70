/**
 * Overview: the node(s) with capacity and load, sandboxes by state, recent runs with their
 * verdicts and recent events — live from the event stream — and charts of the last hour from
 * /v1/metrics/history. Lists are read once and again when an event says they changed (throttled);
 * the history, one request for the whole node, every 10 s. Nothing per sandbox.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { NodeInfo, SandboxInfo } from '@realm/sdk';
import { ApiError, get } from '../api';
import { Chart } from '../components/Chart';
import { bytes, duration } from '../components/format';
import { Ago } from '../components/Ago';
import { Table } from '../components/Table';
import { Badge, Card, ErrorBox, PageHeader, useLoad, useThrottled } from '../components/ui';
import { type RealmEvent, isType, recentEvents, useEvents } from '../events';
import { href, type PageProps } from '../pages';

interface ClusterNode {
  id: string;
  address: string;
  tags: string[];
  state: 'up' | 'down' | 'draining';
  self: boolean;
  report: {
    hostname: string;
    version: string;
    drivers: string[];
    capacity: { cpus: number; memoryBytes: number; sandboxes: number };
    load: { sandboxes: number; loadAvg1: number };
    startedAt: string;
  } | null;
}

interface Sample {
  time: number;
  sandboxes: Record<string, number>;
  runsPerSecond: number;
  execsPerSecond: number;
  sandboxMemoryBytes: number;
}

const HOUR = 3600_000;

/** An event's data field as text. */
const str = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');

/** The node's last hour, read again every 10 s from where it left off. */
function useHistory(): { samples: Sample[]; error: unknown } {
  const [samples, setSamples] = useState<Sample[]>([]);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    let since: number | undefined;
    let stop = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ctl = new AbortController();
    const tick = async (): Promise<void> => {
      try {
        const h = await get<{ samples: Sample[] }>('/v1/metrics/history', since === undefined ? {} : { since }, ctl.signal);
        if (h.samples.length) since = h.samples.at(-1)?.time;
        const cut = Date.now() - HOUR;
        setSamples((old) => [...old, ...h.samples].filter((s) => s.time >= cut));
        setError(undefined);
      } catch (e) {
        if (!ctl.signal.aborted) setError(e);
        if (e instanceof ApiError && e.code === 'METRICS_OFF') return; // nothing to wait for
      }
      if (!stop) timer = setTimeout(() => void tick(), 10_000);
    };
    void tick();
    return () => {
      stop = true;
      ctl.abort();
      clearTimeout(timer);
    };
  }, []);
  return { samples, error };
}

function NodeCard(props: { node: ClusterNode }): JSX.Element {
  const { node } = props;
  const r = node.report;
  const used = r ? r.load.sandboxes / Math.max(1, r.capacity.sandboxes) : 0;
  return (
    <Card title={`Node ${r?.hostname ?? node.id}${node.self ? ' (this one)' : ''}`}>
      <dl class="kv">
        <dt>State</dt>
        <dd>
          <Badge value={node.state} />
        </dd>
        <dt>Address</dt>
        <dd class="mono">{node.address}</dd>
        {r && (
          <>
            <dt>Sandboxes</dt>
            <dd>
              <meter min={0} max={1} value={used} aria-label="Sandbox capacity used" /> {r.load.sandboxes} /{' '}
              {r.capacity.sandboxes}
            </dd>
            <dt>CPUs · memory</dt>
            <dd>
              {r.capacity.cpus} · {bytes(r.capacity.memoryBytes)}
            </dd>
            <dt>Load (1 min)</dt>
            <dd>{r.load.loadAvg1.toFixed(2)}</dd>
            <dt>Drivers</dt>
            <dd>{r.drivers.join(', ')}</dd>
            <dt>Version</dt>
            <dd>
              {r.version} · up since <Ago time={r.startedAt} />
            </dd>
          </>
        )}
        {node.tags.length > 0 && (
          <>
            <dt>Tags</dt>
            <dd>{node.tags.join(', ')}</dd>
          </>
        )}
      </dl>
    </Card>
  );
}

function eventSubject(e: RealmEvent): JSX.Element | string {
  const sb = e.ids.sandbox;
  if (sb) return <a href={href('sandboxes', sb)}>{sb}</a>;
  return Object.values(e.ids).filter(Boolean).join(' ');
}

export default function Overview(_props: PageProps): JSX.Element {
  const node = useLoad((signal) => get<NodeInfo>('/v1/node', undefined, signal));
  const nodes = useLoad((signal) => get<{ nodes: ClusterNode[] }>('/v1/nodes', undefined, signal));
  const sandboxes = useLoad((signal) => get<{ sandboxes: SandboxInfo[] }>('/v1/sandboxes', undefined, signal));
  const history = useHistory();
  const reloadSandboxes = useThrottled(sandboxes.reload, 1000);
  const reloadNodes = useThrottled(nodes.reload, 2000);
  useEvents((e) => {
    if (isType(e, 'sandbox')) {
      reloadSandboxes();
      reloadNodes();
    } else if (isType(e, 'node')) reloadNodes();
  });

  const counts = new Map<string, number>();
  for (const s of sandboxes.data?.sandboxes ?? []) counts.set(s.status, (counts.get(s.status) ?? 0) + 1);
  const events = recentEvents.value;
  const runs = events.filter((e) => e.type === 'run.finished').slice(0, 20);
  const samples = history.samples;

  return (
    <>
      <PageHeader title="Overview" />
      <ErrorBox error={node.error ?? nodes.error ?? sandboxes.error} />
      <div class="grid">
        {(nodes.data?.nodes ?? []).map((n) => (
          <NodeCard key={n.id} node={n} />
        ))}
        <Card title="Sandboxes by state">
          <div class="counts">
            {['running', 'creating', 'stopped', 'destroying', 'lost'].map((state) => (
              <a key={state} class="count" href={`${href('sandboxes')}?state=${state}`}>
                <span class="stat">{counts.get(state) ?? 0}</span>
                <span class="muted">{state}</span>
              </a>
            ))}
          </div>
          {(node.data?.warnings ?? []).length > 0 && (
            <ul class="warnings">
              {(node.data?.warnings ?? []).map((w) => (
                <li key={w}>{w}</li>
              ))}
            </ul>
          )}
        </Card>
        <Card title="Last hour">
          {history.error instanceof ApiError && history.error.code === 'METRICS_OFF' ? (
            <p class="muted">Metrics are off on this node (--no-metrics).</p>
          ) : (
            <>
              <Chart label="Runs/s" values={samples.map((s) => s.runsPerSecond)} format={(v) => v.toFixed(2)} />
              <Chart
                label="Sandboxes"
                values={samples.map((s) => Object.values(s.sandboxes).reduce((a, b) => a + b, 0))}
                format={(v) => String(Math.round(v))}
              />
            </>
          )}
        </Card>
      </div>
      <div class="grid wide">
        <Card title="Recent runs">
          <Table
            label="Recent runs"
            search={false}
            rows={runs}
            rowKey={(e) => String(e.id)}
            empty="No runs yet: they appear here as they finish."
            columns={[
              { key: 'time', label: 'When', render: (e) => <Ago time={e.time} /> },
              { key: 'language', label: 'Language', render: (e) => str(e.data.language) },
              { key: 'driver', label: 'Driver', render: (e) => str(e.data.driver) },
              { key: 'verdict', label: 'Verdict', render: (e) => <Badge value={str(e.data.verdict)} /> },
              { key: 'wall', label: 'Time', numeric: true, render: (e) => duration(Number(e.data.wallMs)) },
            ]}
          />
        </Card>
        <Card title="Recent events">
          <Table
            label="Recent events"
            search={false}
            rows={events.slice(0, 20)}
            rowKey={(e) => String(e.id)}
            empty="Nothing has happened yet."
            columns={[
              { key: 'time', label: 'When', render: (e) => <Ago time={e.time} /> },
              { key: 'type', label: 'Event', render: (e) => <code>{e.type}</code> },
              { key: 'subject', label: 'About', render: eventSubject },
            ]}
          />
        </Card>
      </div>
    </>
  );
}
