/** Background processes of a sandbox: list, start, kill, and each one's output (kept, then live; downloadable). */
import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { del, get, post, saveBlob, seg } from '../../api';
import { sse } from '../../events';
import { Ago } from '../Ago';
import { Table } from '../Table';
import { Badge, ErrorBox, useLoad } from '../ui';

interface Proc {
  id: string;
  command: string[];
  status: 'running' | 'exited';
  startedAt: string;
  tty: boolean;
  exit: { exitCode: number | null; signal: string | null; oomKilled: boolean } | null;
}

/** Most characters of output shown (the start is dropped past it). */
const MAX_SHOWN = 200_000;

/**
 * All the output the daemon keeps of a process (its last 1 MiB of each stream, interleaved as it
 * came), read without following: more than the view holds.
 */
async function keptOutput(id: string, pid: string): Promise<string> {
  let text = '';
  const ctl = new AbortController();
  await sse(
    `/v1/sandboxes/${seg(id)}/processes/${seg(pid)}/output`,
    (m) => {
      if (m.event === 'stdout' || m.event === 'stderr') text += (JSON.parse(m.data) as { data: string }).data;
    },
    { signal: ctl.signal, query: { follow: 0 } },
  );
  return text;
}

function Output(props: { id: string; pid: string; onEnd: () => void }): JSX.Element {
  const [text, setText] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const save = async (): Promise<void> => {
    try {
      const all = await keptOutput(props.id, props.pid);
      saveBlob(new Blob([all], { type: 'text/plain' }), `${props.id}-process-${props.pid}.log`);
    } catch (e) {
      setError(e);
    }
  };
  useEffect(() => {
    setText('');
    const ctl = new AbortController();
    sse(
      `/v1/sandboxes/${seg(props.id)}/processes/${seg(props.pid)}/output`,
      (m) => {
        if (m.event === 'stdout' || m.event === 'stderr') {
          const chunk = (JSON.parse(m.data) as { data: string }).data;
          setText((t) => (t + chunk).slice(-MAX_SHOWN));
        } else if (m.event === 'exit') props.onEnd();
      },
      { signal: ctl.signal },
    ).catch((e: unknown) => {
      if (!ctl.signal.aborted) setError(e);
    });
    return () => ctl.abort();
  }, [props.id, props.pid]);
  return (
    <>
      <div class="row">
        <button type="button" onClick={() => void save()}>
          Download output
        </button>
      </div>
      <ErrorBox error={error} />
      <pre class="log" aria-live="polite" aria-label={`Output of process ${props.pid}`}>
        {text || ' '}
      </pre>
    </>
  );
}

export function Processes(props: { id: string }): JSX.Element {
  const base = `/v1/sandboxes/${seg(props.id)}/processes`;
  const list = useLoad((signal) => get<{ processes: Proc[] }>(base, undefined, signal), [props.id]);
  const [shown, setShown] = useState<string | undefined>(undefined);
  const [command, setCommand] = useState('');
  const [error, setError] = useState<unknown>(undefined);
  const start = async (e: Event): Promise<void> => {
    e.preventDefault();
    setError(undefined);
    try {
      const p = await post<Proc>(base, { command: command.trim() });
      setCommand('');
      setShown(p.id);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const kill = async (pid: string): Promise<void> => {
    try {
      await del(`${base}/${seg(pid)}`);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="split">
      <section aria-label="Background processes">
        <form class="row" onSubmit={(e) => void start(e)}>
          <label for="cmd">Command</label>
          <input
            id="cmd"
            class="mono"
            size={30}
            placeholder="e.g. python3 -m http.server 8000"
            value={command}
            onInput={(e) => setCommand(e.currentTarget.value)}
          />
          <button type="submit" disabled={!command.trim()}>
            Start in background
          </button>
          <button type="button" class="ghost" onClick={list.reload}>
            Refresh
          </button>
        </form>
        <ErrorBox error={error ?? list.error} />
        <Table
          label="Background processes"
          search={false}
          rows={list.data?.processes ?? []}
          rowKey={(p) => p.id}
          initialSort={{ key: 'started', desc: true }}
          empty="No background processes."
          columns={[
            {
              key: 'command',
              label: 'Command',
              render: (p) => (
                <button type="button" class="link mono" aria-pressed={shown === p.id} onClick={() => setShown(p.id)}>
                  {p.command.join(' ')}
                </button>
              ),
            },
            {
              key: 'status',
              label: 'State',
              sort: (p) => p.status,
              render: (p) => (
                <>
                  <Badge value={p.status} />
                  {p.exit && (
                    <span class="muted">
                      {' '}
                      {p.exit.signal ?? `exit ${p.exit.exitCode ?? '?'}`}
                      {p.exit.oomKilled ? ' (OOM)' : ''}
                    </span>
                  )}
                </>
              ),
            },
            {
              key: 'started',
              label: 'Started',
              sort: (p) => p.startedAt,
              render: (p) => <Ago time={p.startedAt} />,
            },
            {
              key: 'kill',
              label: 'Actions',
              render: (p) =>
                p.status === 'running' && (
                  <button type="button" class="danger" aria-label={`Kill ${p.command.join(' ')}`} onClick={() => void kill(p.id)}>
                    Kill
                  </button>
                ),
            },
          ]}
        />
      </section>
      <section aria-label="Process output">
        {shown ? (
          <Output id={props.id} pid={shown} onEnd={list.reload} />
        ) : (
          <p class="muted">Choose a process to see its output.</p>
        )}
      </section>
    </div>
  );
}
