/**
 * Long image work with its log as it happens: building from Debian packages (POST
 * /v1/images/build: `progress` {phase, message, percent}, then `done` or `error`) and pulling
 * from a registry (POST /v1/images/pull: per-layer progress). Cancel closes the stream, which
 * cancels the work and leaves nothing behind. Root only (the daemon answers 403 otherwise).
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, messageOf } from '../../api';
import { bytes, duration } from '../../components/format';
import { postSse } from '../../components/postSse';
import type { BuildProgress, BuildResult, PullProgress } from './types';

type Kind = 'build' | 'pull';

function line(kind: Kind, event: string, data: unknown): string | undefined {
  if (event === 'ping') return undefined;
  if (event === 'error') return `error: ${(data as { error?: { message?: string } }).error?.message ?? 'failed'}`;
  if (kind === 'build') {
    if (event === 'progress') {
      const p = data as BuildProgress;
      return `[${p.phase}] ${Math.round(p.percent)}% ${p.message}`;
    }
    if (event === 'done') {
      const r = data as BuildResult;
      return `done: ${r.name} (${r.cache}, ${bytes(r.bytes)}) in ${duration(r.ms)} — ${r.digest}`;
    }
  } else {
    if (event === 'progress') {
      const p = data as PullProgress;
      if (p.type === 'status') return p.message;
      return `layer ${p.index + 1}/${p.count} ${p.digest.slice(7, 19)} ${p.phase} ${bytes(p.bytes)} / ${bytes(p.total)}`;
    }
    if (event === 'done') return `done: ${JSON.stringify(data)}`;
  }
  return `${event}: ${JSON.stringify(data)}`;
}

export function ImageTask(props: { kind: Kind; disabled?: boolean; onDone: () => void }): JSX.Element {
  const [name, setName] = useState('');
  const [from, setFrom] = useState('');
  const [packages, setPackages] = useState('');
  const [noCache, setNoCache] = useState(false);
  const [log, setLog] = useState<string[]>([]);
  const [percent, setPercent] = useState<number | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const ctl = useRef<AbortController | null>(null);
  const [busy, setBusy] = useState(false);
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => () => ctl.current?.abort(), []);
  useEffect(() => {
    if (pre.current) pre.current.scrollTop = pre.current.scrollHeight;
  }, [log]);

  const start = async (e: Event): Promise<void> => {
    e.preventDefault();
    const c = new AbortController();
    ctl.current = c;
    setBusy(true);
    setError(undefined);
    setLog([]);
    setPercent(props.kind === 'build' ? 0 : undefined);
    const body =
      props.kind === 'build'
        ? {
            name: name.trim(),
            ...(from.trim() ? { from: from.trim() } : {}),
            ...(packages.trim() ? { packages: packages.split(/[\s,]+/).filter(Boolean) } : {}),
            ...(noCache ? { noCache } : {}),
          }
        : { ref: name.trim() };
    let lines: string[] = [];
    let frame = 0;
    const flush = (): void => {
      frame = 0;
      const add = lines;
      lines = [];
      setLog((l) => [...l, ...add].slice(-2000));
    };
    try {
      await postSse(
        `/v1/images/${props.kind}`,
        body,
        (m) => {
          const data = JSON.parse(m.data) as unknown;
          const text = line(props.kind, m.event, data);
          if (text !== undefined) {
            lines.push(text);
            frame ||= requestAnimationFrame(flush);
          }
          if (m.event === 'progress' && props.kind === 'build') setPercent((data as BuildProgress).percent);
          if (m.event === 'done') setPercent(100);
          if (m.event === 'error') {
            const err = (data as { error?: { code?: string; message?: string } }).error;
            setError(new ApiError(500, err?.code ?? 'INTERNAL', err?.message ?? 'failed'));
          }
          return m.event === 'done' || m.event === 'error';
        },
        c.signal,
      );
      props.onDone();
    } catch (err) {
      if (!c.signal.aborted) setError(err);
    } finally {
      if (frame) cancelAnimationFrame(frame);
      flush();
      ctl.current = null;
      setBusy(false);
    }
  };

  const id = `img-${props.kind}`;
  return (
    <form class="stack" onSubmit={(e) => void start(e)} aria-label={props.kind === 'build' ? 'Build an image' : 'Pull an image'}>
      <div class="row">
        <label for={`${id}-name`}>{props.kind === 'build' ? 'Name' : 'Reference'}</label>
        <input
          id={`${id}-name`}
          required
          value={name}
          placeholder={props.kind === 'build' ? 'langs (a recipe), or a new name' : 'registry.example.com/team/tool:1'}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        {props.kind === 'build' && (
          <>
            <label for={`${id}-from`}>From</label>
            <input id={`${id}-from`} value={from} placeholder="debian:bookworm" onInput={(e) => setFrom(e.currentTarget.value)} />
            <label for={`${id}-packages`}>Packages</label>
            <input
              id={`${id}-packages`}
              value={packages}
              placeholder="python3, curl"
              onInput={(e) => setPackages(e.currentTarget.value)}
            />
            <label>
              <input type="checkbox" checked={noCache} onChange={(e) => setNoCache(e.currentTarget.checked)} /> no cache
            </label>
          </>
        )}
        {busy ? (
          <button type="button" class="danger" onClick={() => ctl.current?.abort()}>
            Cancel
          </button>
        ) : (
          <button type="submit" class="primary" disabled={props.disabled || !name.trim()}>
            {props.kind === 'build' ? 'Build' : 'Pull'}
          </button>
        )}
      </div>
      {props.kind === 'build' && <p class="muted">Only a name builds the daemon's recipe file of that name (e.g. langs).</p>}
      {percent !== undefined && (
        <div
          class="bar"
          role="progressbar"
          aria-label="Progress"
          aria-valuemin={0}
          aria-valuemax={100}
          aria-valuenow={Math.round(percent)}
        >
          <span style={{ width: `${percent}%` }} />
        </div>
      )}
      {error !== undefined && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
      {log.length > 0 && (
        <pre class="log" ref={pre} aria-label={props.kind === 'build' ? 'Build log' : 'Pull log'} tabIndex={0}>
          {log.join('\n')}
        </pre>
      )}
    </form>
  );
}
