/** A tiny line chart in SVG (no chart library: a sparkline with its latest and highest value). */
import type { JSX } from 'preact';

export function Chart(props: { label: string; values: number[]; format: (v: number) => string }): JSX.Element {
  const { values } = props;
  const W = 300;
  const H = 70;
  const max = Math.max(1e-9, ...values);
  const step = values.length > 1 ? W / (values.length - 1) : W;
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${(H - 2 - (v / max) * (H - 6)).toFixed(1)}`);
  const last = values.at(-1);
  const summary = values.length
    ? `${props.label}: now ${props.format(last ?? 0)}, highest ${props.format(Math.max(...values))} over the last hour`
    : `${props.label}: no samples yet`;
  return (
    <figure class="chart-fig">
      <figcaption>
        <span>{props.label}</span>
        <strong>{last === undefined ? '—' : props.format(last)}</strong>
      </figcaption>
      <svg class="chart" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={summary}>
        {pts.length > 1 && (
          <>
            <polygon class="area" points={`0,${H} ${pts.join(' ')} ${W},${H}`} />
            <polyline class="line" points={pts.join(' ')} />
          </>
        )}
      </svg>
      <span class="muted small">{values.length ? `max ${props.format(Math.max(...values))} · last hour` : 'no samples yet'}</span>
    </figure>
  );
}
