/** Small shared pieces: page header, cards, badges, errors, a confirm dialog, a data hook. */
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { messageOf } from '../api';
import { resync } from '../events';

export function PageHeader(props: { title: string; children?: ComponentChildren }): JSX.Element {
  return (
    <header class="page-header">
      <h1>{props.title}</h1>
      <div class="actions">{props.children}</div>
    </header>
  );
}

export function Card(props: { title?: string; class?: string; children: ComponentChildren }): JSX.Element {
  return (
    <section class={`card ${props.class ?? ''}`} aria-label={props.title}>
      {props.title && <h2>{props.title}</h2>}
      {props.children}
    </section>
  );
}

/** A state or verdict as a colored badge (colors by meaning: ok, warn, bad, idle). */
export function Badge(props: { value: string }): JSX.Element {
  const v = props.value;
  const tone = /^(running|ok|ready|up|healthy|succeeded|active)$/.test(v)
    ? 'ok'
    : /^(creating|starting|pending|queued|stopping|destroying|draining|retrying)$/.test(v)
      ? 'warn'
      : /^(stopped|idle|cancelled|canceled)$/.test(v)
        ? 'idle'
        : 'bad';
  return <span class={`badge ${tone}`}>{v}</span>;
}

export function ErrorBox(props: { error: unknown }): JSX.Element | null {
  if (props.error === undefined || props.error === null) return null;
  return (
    <p class="error" role="alert">
      {messageOf(props.error)}
    </p>
  );
}

export function Placeholder(props: { title: string; what: string }): JSX.Element {
  return (
    <>
      <PageHeader title={props.title} />
      <p class="muted">{props.what}</p>
    </>
  );
}

/**
 * Load data once (and again on `reload()` or when `deps` change). Pages refresh on the event
 * stream by calling `reload` from `useEvents`, not on a timer; everything loads again when the
 * stream may have missed events (`resync`: the daemon restarted).
 */
export function useLoad<T>(
  load: (signal: AbortSignal) => Promise<T>,
  deps: unknown[] = [],
): { data: T | undefined; error: unknown; loading: boolean; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const ctl = new AbortController();
    setLoading(true);
    load(ctl.signal).then(
      (d) => {
        if (ctl.signal.aborted) return;
        setData(d);
        setError(undefined);
        setLoading(false);
      },
      (e: unknown) => {
        if (ctl.signal.aborted) return;
        setError(e);
        setLoading(false);
      },
    );
    return () => ctl.abort();
  }, [...deps, tick, resync.value]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/**
 * `reload` at most once per `ms` however many events ask for it: a burst of events (a hundred
 * sandboxes created) makes one request, not a hundred.
 */
export function useThrottled(fn: () => void, ms = 500): () => void {
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => () => clearTimeout(timer.current), []);
  return useCallback(() => {
    if (timer.current !== undefined) return;
    timer.current = setTimeout(() => {
      timer.current = undefined;
      latest.current();
    }, ms);
  }, [ms]);
}

/** A button that asks before it acts (a <dialog>, keyboard and screen-reader friendly). */
export function ConfirmButton(props: {
  label: string;
  question: string;
  onConfirm: () => void | Promise<void>;
  danger?: boolean;
  disabled?: boolean;
}): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  return (
    <>
      <button
        type="button"
        class={props.danger ? 'danger' : undefined}
        disabled={props.disabled}
        onClick={() => ref.current?.showModal()}
      >
        {props.label}
      </button>
      <dialog ref={ref} aria-label={props.label}>
        <form method="dialog">
          <p>{props.question}</p>
          <div class="row">
            <button value="cancel" autofocus>
              Cancel
            </button>
            <button
              value="ok"
              class={props.danger ? 'danger' : 'primary'}
              onClick={() => {
                void props.onConfirm();
              }}
            >
              {props.label}
            </button>
          </div>
        </form>
      </dialog>
    </>
  );
}
