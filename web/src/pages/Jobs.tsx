/**
 * Jobs: the list (latest run's state, filters by state and type, search, sort), submitting a
 * TOML spec with attachments, and one job's page at /ui/jobs/<name> (runs, live log, artifacts,
 * cancel, run again). The list refreshes on the event stream's job events.
 */
import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import { useLocation } from 'preact-iso';
import { get } from '../api';
import { isType, useEvents } from '../events';
import { Ago } from '../components/Ago';
import { useBelow } from '../components/below';
import { type Column, Table } from '../components/Table';
import { Badge, Card, ErrorBox, PageHeader, useLoad, useThrottled } from '../components/ui';
import { href, type PageProps } from '../pages';
import { JobDetail } from './jobs/JobDetail';
import { Submit } from './jobs/Submit';
import type { JobInfo, JobRun } from './jobs/types';
import '../components/extras.css';

const latest = (j: JobInfo): JobRun | undefined =>
  j.runs.reduce<JobRun | undefined>((a, r) => (!a || r.n > a.n ? r : a), undefined);

export default function Jobs(props: PageProps): JSX.Element {
  const name = useBelow('jobs', props.rest).split('/')[0] ?? '';
  return name ? <JobDetail name={name} /> : <JobList />;
}

function JobList(): JSX.Element {
  const { route } = useLocation();
  const list = useLoad((signal) => get<{ jobs: JobInfo[] }>('/v1/jobs', undefined, signal));
  const reload = useThrottled(list.reload, 500);
  useEvents((e) => {
    if (isType(e, 'job')) reload();
  });
  const [state, setState] = useState('');
  const [type, setType] = useState('');
  const [showSubmit, setShowSubmit] = useState(false);

  const rows = (list.data?.jobs ?? []).filter(
    (j) => (!state || (latest(j)?.state ?? 'none') === state) && (!type || j.type === type),
  );
  const columns: Column<JobInfo>[] = [
    { key: 'name', label: 'Name', sort: (j) => j.name, render: (j) => <a href={href('jobs', j.name)}>{j.name}</a> },
    { key: 'type', label: 'Type', sort: (j) => j.type },
    {
      key: 'state',
      label: 'Latest run',
      sort: (j) => latest(j)?.state ?? '',
      render: (j) => {
        const r = latest(j);
        return r ? (
          <>
            <Badge value={r.state} /> <span class="muted">#{r.n}</span>
          </>
        ) : (
          <span class="muted">none</span>
        );
      },
    },
    { key: 'runs', label: 'Runs', numeric: true, sort: (j) => j.runs.length, render: (j) => j.runs.length },
    {
      key: 'schedule',
      label: 'Schedule',
      text: (j) => j.schedule?.cron.join(' ') ?? '',
      render: (j) => (j.schedule ? <code>{j.schedule.cron.join(', ')}</code> : ''),
    },
    {
      key: 'updatedAt',
      label: 'Updated',
      sort: (j) => latest(j)?.createdAt ?? j.updatedAt,
      render: (j) => {
        const at = latest(j)?.createdAt ?? j.updatedAt;
        return <Ago time={at} />;
      },
    },
  ];

  return (
    <>
      <PageHeader title="Jobs">
        <button type="button" class="primary" aria-expanded={showSubmit} onClick={() => setShowSubmit((s) => !s)}>
          {showSubmit ? 'Close' : 'Submit a job'}
        </button>
      </PageHeader>
      {showSubmit && (
        <Card title="Submit a job">
          <Submit onSubmitted={(j) => route(href('jobs', j.name))} />
        </Card>
      )}
      <ErrorBox error={list.error} />
      <Table
        label="Jobs"
        rows={rows}
        columns={columns}
        rowKey={(j) => j.name}
        initialSort={{ key: 'updatedAt', desc: true }}
        empty={list.loading ? 'Loading…' : 'No jobs yet: submit one.'}
        toolbar={
          <div class="row filters">
            <label for="jobs-state">State</label>
            <select id="jobs-state" value={state} onChange={(e) => setState(e.currentTarget.value)}>
              <option value="">any</option>
              {['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
            <label for="jobs-type">Type</label>
            <select id="jobs-type" value={type} onChange={(e) => setType(e.currentTarget.value)}>
              <option value="">any</option>
              <option>batch</option>
              <option>cron</option>
            </select>
          </div>
        }
      />
    </>
  );
}
