/**
 * A relative time that keeps itself current ("12 s ago" becomes "13 s ago"): every <Ago> reads
 * one shared clock, a signal ticked by ONE interval that runs only while some <Ago> is shown —
 * not a timer per row. Only the <Ago>s re-render on a tick, not the tables around them.
 */
import { signal } from '@preact/signals';
import type { JSX } from 'preact';
import { useEffect } from 'preact/hooks';
import { ago, localTime } from './format';

/** Now, in ms since the epoch, as of the last tick. */
export const now = signal(Date.now());
const TICK_MS = 1000;
let shown = 0;
let timer: ReturnType<typeof setInterval> | undefined;

function watch(): () => void {
  if (shown++ === 0) {
    now.value = Date.now();
    timer = setInterval(() => (now.value = Date.now()), TICK_MS);
  }
  return () => {
    if (--shown === 0) {
      clearInterval(timer);
      timer = undefined;
    }
  };
}

/** `time` (ISO) as "12 s ago" / "in 5m00s", the local time in its title; `never` when absent. */
export function Ago(props: { time: string | null | undefined; never?: string }): JSX.Element {
  useEffect(watch, []);
  // Read on each tick (it re-renders this); the time itself is the freshest, so a thing made
  // since the last tick is "0 s ago", not "in 0 s".
  const tick = now.value;
  if (!props.time) return <span>{props.never ?? '—'}</span>;
  return <span title={localTime(props.time)}>{ago(props.time, Math.max(tick, Date.now()))}</span>;
}
