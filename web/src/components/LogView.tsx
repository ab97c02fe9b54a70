/**
 * A live log: `follow` feeds it text until its signal aborts or the source ends; the view keeps
 * the last MAX characters, stays at the bottom while the reader is there, and saves what it holds.
 * A new `source` key starts it again (another run, another attempt).
 */
import type { JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { messageOf, saveBlob } from '../api';

/** Characters kept on screen: a runaway log must not take the tab's memory. */
const MAX = 2_000_000;

export function LogView(props: {
  /** Changes when another log should be shown. */
  source: string;
  label: string;
  follow: (onText: (text: string) => void, signal: AbortSignal) => Promise<void>;
  /** The file name for Download. */
  fileName: string;
  /** Fetch the whole log for Download (what is on screen may be cut). Default: save what is shown. */
  downloadAll?: () => Promise<void>;
}): JSX.Element {
  const [text, setText] = useState('');
  const [state, setState] = useState<'live' | 'ended' | 'error'>('live');
  const [error, setError] = useState<unknown>(undefined);
  const pre = useRef<HTMLPreElement>(null);
  const stick = useRef(true);
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const ctl = new AbortController();
    setText('');
    setState('live');
    setError(undefined);
    stick.current = true;
    let pending = '';
    let frame = 0;
    const flush = (): void => {
      frame = 0;
      const add = pending;
      pending = '';
      setText((t) => {
        const all = t + add;
        return all.length > MAX ? all.slice(all.length - MAX) : all;
      });
    };
    latest.current
      .follow((t) => {
        pending += t;
        frame ||= requestAnimationFrame(flush);
      }, ctl.signal)
      .then(
        () => !ctl.signal.aborted && setState('ended'),
        (e: unknown) => {
          if (ctl.signal.aborted) return;
          setError(e);
          setState('error');
        },
      )
      .finally(() => {
        if (frame) cancelAnimationFrame(frame);
        if (!ctl.signal.aborted) flush();
      });
    return () => {
      ctl.abort();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [props.source]);

  useEffect(() => {
    const el = pre.current;
    if (el && stick.current) el.scrollTop = el.scrollHeight;
  }, [text]);

  const save = (): void => {
    if (latest.current.downloadAll) {
      void latest.current.downloadAll().catch((e: unknown) => setError(e));
      return;
    }
    saveBlob(new Blob([text], { type: 'text/plain' }), props.fileName);
  };

  return (
    <div class="logview">
      <div class="row">
        <span class={`badge ${state === 'live' ? 'ok' : state === 'error' ? 'bad' : 'idle'}`}>
          {state === 'live' ? 'following' : state}
        </span>
        <button type="button" onClick={save}>
          Download
        </button>
        {text.length >= MAX && <span class="muted">showing the last {MAX / 1_000_000} M characters</span>}
      </div>
      {error !== undefined && (
        <p class="error" role="alert">
          {messageOf(error)}
        </p>
      )}
      <pre
        class="log"
        ref={pre}
        aria-label={props.label}
        aria-live="off"
        tabIndex={0}
        onScroll={(e) => {
          const el = e.currentTarget;
          stick.current = el.scrollTop + el.clientHeight >= el.scrollHeight - 8;
        }}
      >
        {text || <span class="muted">{state === 'live' ? 'Waiting for output…' : 'Empty.'}</span>}
      </pre>
    </div>
  );
}
