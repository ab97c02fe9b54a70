/**
 * One sandbox: its limits, network policy with denied connections, live stats, lifecycle actions
 * (tab "Overview"), a terminal, its files and its background processes. The record is read again
 * when an event about this sandbox comes, never on a timer.
 */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { lazy } from 'preact-iso';
import type { SandboxInfo } from '@realm/sdk';
import { ApiError, del, get, patch, post, seg } from '../../api';
import { sse, useEvents } from '../../events';
import { href } from '../../pages';
import { bytes } from '../format';
import { Ago } from '../Ago';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../ui';
import { Files } from './Files';
import { Processes } from './Processes';

// xterm.js is the biggest dependency: loaded when the terminal tab is first opened.
const Terminal = lazy(() => import('./Terminal').then((m) => m.Terminal));

const TABS = [
  { id: '', name: 'Overview' },
  { id: 'terminal', name: 'Terminal' },
  { id: 'files', name: 'Files' },
  { id: 'processes', name: 'Processes' },
];

interface Stats {
  cpu: { percent: number | null; limitCpus: number };
  memory: { bytes: number; peakBytes: number | null; limitBytes: number };
  pids: { current: number; limit: number };
  disk: { usedBytes: number | null; limitBytes: number };
  network: { rxBytes: number; txBytes: number } | null;
}

interface Network {
  network: string;
  allow: string[];
  deny: string[];
  denied: { time: string; host: string; port: number; reason: string }[];
}

/** Live figures from the stats stream while the sandbox runs (one stream, closed when the tab is left). */
function LiveStats(props: { id: string; running: boolean }): JSX.Element {
  const [stats, setStats] = useState<Stats | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  useEffect(() => {
    if (!props.running) return;
    const ctl = new AbortController();
    sse(
      `/v1/sandboxes/${seg(props.id)}/stats/stream`,
      (m) => {
        if (m.event === 'stats') setStats(JSON.parse(m.data) as Stats);
        else if (m.event === 'error') setError(new Error((JSON.parse(m.data) as { message?: string }).message ?? m.data));
      },
      { signal: ctl.signal, query: { interval: '2s' } },
    ).catch((e: unknown) => {
      if (!ctl.signal.aborted) setError(e);
    });
    return () => ctl.abort();
  }, [props.id, props.running]);
  if (!props.running) return <p class="muted">Not running: no live figures.</p>;
  return (
    <>
      <ErrorBox error={error} />
      {stats ? (
        <dl class="kv" aria-live="polite">
          <dt>CPU</dt>
          <dd>
            {stats.cpu.percent === null ? '…' : `${stats.cpu.percent.toFixed(1)}%`} of {stats.cpu.limitCpus} core(s)
          </dd>
          <dt>Memory</dt>
          <dd>
            <meter min={0} max={stats.memory.limitBytes} value={stats.memory.bytes} aria-label="Memory used" />{' '}
            {bytes(stats.memory.bytes)} / {bytes(stats.memory.limitBytes)}
            {stats.memory.peakBytes !== null && ` (peak ${bytes(stats.memory.peakBytes)})`}
          </dd>
          <dt>Processes</dt>
          <dd>
            {stats.pids.current} / {stats.pids.limit}
          </dd>
          <dt>Disk</dt>
          <dd>
            {bytes(stats.disk.usedBytes)} / {bytes(stats.disk.limitBytes)}
          </dd>
          {stats.network && (
            <>
              <dt>Network</dt>
              <dd>
                ↓ {bytes(stats.network.rxBytes)} ↑ {bytes(stats.network.txBytes)}
              </dd>
            </>
          )}
        </dl>
      ) : (
        <p class="muted">Reading…</p>
      )}
    </>
  );
}

function Actions(props: { sb: SandboxInfo; onDone: () => void }): JSX.Element {
  const loc = useLocation();
  const [error, setError] = useState<unknown>(undefined);
  const [ttl, setTtl] = useState('1h');
  const path = `/v1/sandboxes/${seg(props.sb.id)}`;
  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    try {
      await fn();
      props.onDone();
    } catch (e) {
      setError(e);
    }
  };
  const running = props.sb.status === 'running';
  return (
    <>
      <div class="row">
        {running ? (
          <button type="button" onClick={() => void act(() => post(`${path}/stop`))}>
            Stop
          </button>
        ) : (
          <button type="button" onClick={() => void act(() => post(`${path}/start`))} disabled={props.sb.status !== 'stopped'}>
            Start
          </button>
        )}
        <ConfirmButton
          label="Kill processes"
          question="Send SIGKILL to every process in the sandbox (its init stays)?"
          disabled={!running}
          onConfirm={() => act(() => post(`${path}/signal`, { signal: 'SIGKILL' }))}
        />
        <ConfirmButton
          label="Destroy"
          danger
          question={`Destroy ${props.sb.id}? Its files go with it (volumes stay).`}
          onConfirm={() =>
            act(async () => {
              await del(path);
              loc.route(href('sandboxes'));
            })
          }
        />
      </div>
      {/* A replica's or a job attempt's life is its service's or its run's: no TTL of its own (the API refuses one). */}
      {props.sb.labels['realm.service'] === undefined && props.sb.labels['realm.job-run'] === undefined && (
        <form
          class="row"
          onSubmit={(e) => {
            e.preventDefault();
            void act(() => patch(path, { ttl }));
          }}
        >
          <label for="ttl">Time to live from now</label>
          <input id="ttl" value={ttl} size={6} onInput={(e) => setTtl(e.currentTarget.value)} />
          <button type="submit">Set TTL</button>
        </form>
      )}
      <ErrorBox error={error} />
    </>
  );
}

function OverviewTab(props: { sb: SandboxInfo; reload: () => void }): JSX.Element {
  const { sb } = props;
  // A service's replica (services/reconciler.ts labels it) links back to its service.
  const service = sb.labels['realm.service'];
  const net = useLoad((signal) => get<Network>(`/v1/sandboxes/${seg(sb.id)}/network`, undefined, signal), [sb.id]);
  return (
    <div class="grid">
      <Card title="Sandbox">
        <dl class="kv">
          <dt>State</dt>
          <dd>
            <Badge value={sb.status} />
          </dd>
          <dt>Driver · image</dt>
          <dd>
            {sb.driver} · <span class="mono">{sb.image}</span>
          </dd>
          {sb.node !== undefined && (
            <>
              <dt>Node</dt>
              <dd>
                <code>{sb.node}</code>
              </dd>
            </>
          )}
          {service !== undefined && (
            <>
              <dt>Replica of</dt>
              <dd>
                <a href={href('services', service)}>{service}</a>
              </dd>
            </>
          )}
          <dt>Created</dt>
          <dd>
            <Ago time={sb.createdAt} />
          </dd>
          <dt>Expires</dt>
          <dd>
            <Ago time={sb.expiresAt} never="never" />
          </dd>
          {Object.keys(sb.labels).length > 0 && (
            <>
              <dt>Labels</dt>
              <dd>
                {Object.entries(sb.labels).map(([k, v]) => (
                  <code key={k} class="tag">
                    {k}={v}
                  </code>
                ))}
              </dd>
            </>
          )}
          {sb.volumes.length > 0 && (
            <>
              <dt>Volumes</dt>
              <dd>{sb.volumes.map((v) => `${v.volume} → ${v.path}${v.readOnly ? ' (ro)' : ''}`).join(', ')}</dd>
            </>
          )}
        </dl>
        <h3>Actions</h3>
        <Actions sb={sb} onDone={props.reload} />
      </Card>
      <Card title="Limits">
        <dl class="kv">
          <dt>Memory</dt>
          <dd>{bytes(sb.limits.memoryBytes)}</dd>
          <dt>CPUs</dt>
          <dd>{sb.limits.cpus}</dd>
          <dt>Processes</dt>
          <dd>{sb.limits.pids}</dd>
          <dt>Disk</dt>
          <dd>{bytes(sb.limits.diskBytes)}</dd>
          <dt>/tmp</dt>
          <dd>{bytes(sb.limits.tmpBytes)}</dd>
        </dl>
      </Card>
      <Card title="Live">
        <LiveStats id={sb.id} running={sb.status === 'running'} />
      </Card>
      <Card title="Network">
        <ErrorBox error={net.error} />
        {net.data && (
          <>
            <dl class="kv">
              <dt>Mode</dt>
              <dd>{net.data.network}</dd>
              <dt>Allow</dt>
              <dd>{net.data.allow.length ? net.data.allow.join(', ') : '—'}</dd>
              <dt>Deny</dt>
              <dd>{net.data.deny.length ? net.data.deny.join(', ') : '—'}</dd>
            </dl>
            <h3>Denied connections</h3>
            {net.data.denied.length === 0 ? (
              <p class="muted">None.</p>
            ) : (
              <ul class="denied">
                {net.data.denied
                  .slice(-50)
                  .reverse()
                  .map((d, i) => (
                    <li key={i}>
                      <Ago time={d.time} /> <code>{`${d.host}:${d.port}`}</code> — {d.reason}
                    </li>
                  ))}
              </ul>
            )}
            <button type="button" class="ghost" onClick={net.reload}>
              Refresh
            </button>
          </>
        )}
      </Card>
    </div>
  );
}

export function SandboxDetail(props: { id: string; tab: string }): JSX.Element {
  const { id, tab } = props;
  const sb = useLoad((signal) => get<SandboxInfo>(`/v1/sandboxes/${seg(id)}`, undefined, signal), [id]);
  const refresh = useThrottled(sb.reload, 300);
  useEvents(
    (e) => {
      if (e.ids.sandbox === id || e.ids.sandbox === sb.data?.id) refresh();
    },
    [id, sb.data?.id],
  );
  if (sb.error instanceof ApiError && sb.error.status === 404)
    return (
      <>
        <PageHeader title={`Sandbox ${id}`} />
        <p>
          No sandbox “{id}” (destroyed, or not yours). <a href={href('sandboxes')}>All sandboxes</a>
        </p>
      </>
    );
  const data = sb.data;
  return (
    <>
      <PageHeader title={`Sandbox ${data?.name ?? id}`}>
        <a href={href('sandboxes')}>← All sandboxes</a>
      </PageHeader>
      <ErrorBox error={sb.error} />
      <div role="tablist" aria-label="Sandbox views">
        {TABS.map((t) => (
          <a key={t.id} role="tab" aria-selected={tab === t.id} href={t.id ? href('sandboxes', id, t.id) : href('sandboxes', id)}>
            {t.name}
          </a>
        ))}
      </div>
      <div role="tabpanel">
        {data &&
          (tab === 'terminal' ? (
            data.status === 'running' ? (
              <Terminal id={data.id} />
            ) : (
              <p class="muted">Start the sandbox to open a terminal.</p>
            )
          ) : tab === 'files' ? (
            <Files id={data.id} running={data.status === 'running'} />
          ) : tab === 'processes' ? (
            <Processes id={data.id} />
          ) : (
            <OverviewTab sb={data} reload={sb.reload} />
          ))}
      </div>
    </>
  );
}
