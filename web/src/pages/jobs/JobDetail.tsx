/**
 * One job: its runs; the chosen run's attempts, live log, artifacts (download), inputs; the job's
 * events. Cancel stops its active runs (and a cron job's schedule), Run again submits its spec
 * once more, Remove forgets it. Refreshed by the event stream's job events, never by a timer.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { ApiError, del, download, get, post, seg } from '../../api';
import { isType, sse, useEvents } from '../../events';
import { bytes, duration, localTime } from '../../components/format';
import { Ago } from '../../components/Ago';
import { LogView } from '../../components/LogView';
import { type Column, Table } from '../../components/Table';
import { Badge, Card, ConfirmButton, ErrorBox, PageHeader, useLoad, useThrottled } from '../../components/ui';
import { href } from '../../pages';
import { ENDED, type JobAttempt, type JobArtifact, type JobInfo, type JobRun } from './types';

const when = (iso: string | null): JSX.Element => <Ago time={iso} />;

export function JobDetail(props: { name: string }): JSX.Element {
  const { route } = useLocation();
  const job = useLoad((signal) => get<JobInfo>(`/v1/jobs/${seg(props.name)}`, undefined, signal), [props.name]);
  const reload = useThrottled(job.reload, 300);
  useEvents(
    (e) => {
      if (isType(e, 'job') && e.ids.job === props.name) reload();
    },
    [props.name],
  );
  const [picked, setPicked] = useState<string | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);

  const act = async (fn: () => Promise<unknown>): Promise<void> => {
    setError(undefined);
    try {
      await fn();
      job.reload();
    } catch (e) {
      setError(e);
    }
  };

  const j = job.data;
  if (!j) {
    return (
      <>
        <PageHeader title={`Job ${props.name}`} />
        {job.error instanceof ApiError && job.error.code === 'JOB_NOT_FOUND' ? (
          <p>
            No job {props.name}. <a href={href('jobs')}>All jobs</a>
          </p>
        ) : (
          <ErrorBox error={job.error} />
        )}
        {job.loading && <p class="loading">Loading…</p>}
      </>
    );
  }
  const runs = [...j.runs].sort((a, b) => b.n - a.n);
  const run = runs.find((r) => r.id === picked) ?? runs[0];
  const active = j.runs.some((r) => !ENDED.includes(r.state));

  const columns: Column<JobRun>[] = [
    {
      key: 'n',
      label: 'Run',
      sort: (r) => r.n,
      render: (r) => (
        <button type="button" class="ghost" aria-pressed={r.id === run?.id} onClick={() => setPicked(r.id)}>
          #{r.n}
        </button>
      ),
    },
    { key: 'state', label: 'State', sort: (r) => r.state, render: (r) => <Badge value={r.state} /> },
    { key: 'attempts', label: 'Attempts', numeric: true, sort: (r) => r.attempts.length, render: (r) => r.attempts.length },
    { key: 'createdAt', label: 'Created', sort: (r) => r.createdAt, render: (r) => when(r.createdAt) },
    {
      key: 'took',
      label: 'Took',
      numeric: true,
      sort: (r) => (r.startedAt && r.endedAt ? Date.parse(r.endedAt) - Date.parse(r.startedAt) : -1),
      render: (r) => (r.startedAt && r.endedAt ? duration(Date.parse(r.endedAt) - Date.parse(r.startedAt)) : '—'),
    },
    { key: 'reason', label: 'Reason', text: (r) => r.reason ?? '', render: (r) => r.reason ?? '' },
  ];

  return (
    <>
      <PageHeader title={`Job ${j.name}`}>
        <a href={href('jobs')}>All jobs</a>
        <button type="button" onClick={() => void act(() => post(`/v1/jobs`, j.spec))} title="Submit this job's spec again">
          Run again
        </button>
        <ConfirmButton
          label="Cancel"
          question={`Cancel the active runs of ${j.name}${j.type === 'cron' ? ' and turn its schedule off' : ''}?`}
          disabled={!active && j.type !== 'cron'}
          onConfirm={() => act(() => post(`/v1/jobs/${seg(j.name)}/cancel`))}
        />
        <ConfirmButton
          label="Remove"
          danger
          disabled={active}
          question={`Remove job ${j.name} with its runs, logs and artifacts?`}
          onConfirm={() =>
            act(async () => {
              await del(`/v1/jobs/${seg(j.name)}`);
              route(href('jobs'));
            })
          }
        />
      </PageHeader>
      <ErrorBox error={error ?? job.error} />
      <p class="muted">
        {j.type}
        {j.schedule && ` · ${j.schedule.cron.join(', ')} (${j.schedule.timezone})`} · created <Ago time={j.createdAt} /> · updated{' '}
        <Ago time={j.updatedAt} />
      </p>
      <Table label="Runs" rows={runs} columns={columns} rowKey={(r) => r.id} search={false} empty="No runs yet." />
      {run && <RunDetail key={run.id} job={j.name} run={run} />}
      {j.events.length > 0 && (
        <Card title="Events">
          <ul class="events">
            {[...j.events].reverse().map((e, i) => (
              <li key={i}>
                {when(e.at)} <Badge value={e.type} /> {e.reason}
                {e.run && <code> {e.run}</code>}
              </li>
            ))}
          </ul>
        </Card>
      )}
    </>
  );
}

function RunDetail(props: { job: string; run: JobRun }): JSX.Element {
  const { run } = props;
  const [picked, setPicked] = useState<number | undefined>(undefined);
  const attempt = run.attempts.find((a) => a.n === picked) ?? run.attempts.at(-1);

  const attemptCols: Column<JobAttempt>[] = [
    {
      key: 'n',
      label: 'Attempt',
      sort: (a) => a.n,
      render: (a) => (
        <button type="button" class="ghost" aria-pressed={a.n === attempt?.n} onClick={() => setPicked(a.n)}>
          {a.n}
        </button>
      ),
    },
    { key: 'state', label: 'State', render: (a) => <Badge value={a.state} /> },
    { key: 'verdict', label: 'Verdict', render: (a) => (a.verdict ? <Badge value={a.verdict} /> : '—') },
    { key: 'exit', label: 'Exit', render: (a) => (a.signal ? a.signal : (a.exitCode ?? '—')) },
    { key: 'wall', label: 'Time', numeric: true, render: (a) => duration(a.wallMs) },
    { key: 'mem', label: 'Memory', numeric: true, render: (a) => bytes(a.memoryBytes) },
    { key: 'node', label: 'Node', render: (a) => a.node ?? '—' },
    { key: 'error', label: 'Error', render: (a) => a.error ?? '' },
  ];
  const artifactCols: Column<JobArtifact>[] = [
    { key: 'name', label: 'Name', sort: (a) => a.name },
    { key: 'path', label: 'Path', sort: (a) => a.path, render: (a) => <code>{a.path}</code> },
    { key: 'kind', label: 'Kind', render: (a) => (a.kind === 'tar' ? 'directory (tar)' : 'file') },
    { key: 'size', label: 'Size', numeric: true, sort: (a) => a.size, render: (a) => bytes(a.size) },
    { key: 'outcome', label: 'Outcome', render: (a) => <Badge value={a.outcome} /> },
    {
      key: 'get',
      label: '',
      render: (a) => (
        <button
          type="button"
          onClick={() =>
            void download(`/v1/jobs/${seg(run.id)}/artifacts/${seg(a.name)}`, a.kind === 'tar' ? `${a.name}.tar` : a.name)
          }
        >
          Download
        </button>
      ),
    },
  ];

  return (
    <div class="split run-detail">
      <div class="stack">
        <Card title={`Run #${run.n}`}>
          <dl class="kv">
            <dt>Id</dt>
            <dd>
              <code>{run.id}</code>
            </dd>
            <dt>State</dt>
            <dd>
              <Badge value={run.state} />
              {run.position !== null && ` (position ${run.position} in the queue)`}
              {run.nextAttemptAt && (
                <>
                  {' '}
                  · next attempt <Ago time={run.nextAttemptAt} />
                </>
              )}
            </dd>
            {run.reason && (
              <>
                <dt>Reason</dt>
                <dd>{run.reason}</dd>
              </>
            )}
            <dt>Started</dt>
            <dd>{when(run.startedAt)}</dd>
            <dt>Ended</dt>
            <dd>{when(run.endedAt)}</dd>
            {run.firing && (
              <>
                <dt>Firing</dt>
                <dd>{localTime(run.firing)}</dd>
              </>
            )}
          </dl>
        </Card>
        <Table
          label="Attempts"
          rows={run.attempts}
          columns={attemptCols}
          rowKey={(a) => String(a.n)}
          search={false}
          empty="Not started yet."
        />
        <Table
          label="Artifacts"
          rows={run.artifacts}
          columns={artifactCols}
          rowKey={(a) => a.name}
          search={false}
          empty={ENDED.includes(run.state) ? 'No artifacts.' : 'Artifacts come when an attempt ends.'}
        />
        {run.inputs.length > 0 && (
          <Card title="Inputs">
            <ul>
              {run.inputs.map((i) => (
                <li key={i.dest}>
                  <code>{i.dest}</code> ← {i.from}
                  {i.unpack && ' (unpacked)'}
                </li>
              ))}
            </ul>
          </Card>
        )}
      </div>
      <Card title={attempt ? `Log of attempt ${attempt.n}` : 'Log'}>
        {run.logDropped && (
          <p class="muted">
            The log was dropped <Ago time={run.logDropped} /> to keep the node's job logs under their bound.
          </p>
        )}
        {attempt ? (
          <LogView
            source={`${run.id}:${attempt.n}`}
            label={`Log of run ${run.n}, attempt ${attempt.n}`}
            fileName={`${props.job}-${run.n}-${attempt.n}.log`}
            follow={(onText, signal) =>
              sse(
                `/v1/jobs/${seg(run.id)}/logs/stream`,
                (m) => {
                  if (m.event === 'log') onText((JSON.parse(m.data) as { data: string }).data);
                },
                { query: { attempt: attempt.n, follow: 1 }, signal },
              )
            }
            downloadAll={() =>
              download(`/v1/jobs/${seg(run.id)}/logs`, `${props.job}-${run.n}-${attempt.n}.log`, { attempt: attempt.n })
            }
          />
        ) : (
          <p class="muted">{run.state === 'queued' ? 'Queued: the log starts with the first attempt.' : 'No attempt yet.'}</p>
        )}
      </Card>
    </div>
  );
}
