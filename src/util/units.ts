/** Parsing of the units people write for limits: `512m`, `2g`, `10s`, `1.5` cpus. */

const SIZE: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const TIME: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parse a byte size: a number of bytes, or a number with k/m/g/t (powers of 1024, optional `b`/`ib`).
 * @example parseSize('512m') // 536870912
 * @returns the size in bytes, or null when the text is not a size.
 */
export function parseSize(text: string | number): number | null {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text >= 0 ? text : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return null;
  const v = Number(m[1]) * (SIZE[(m[2] ?? '').toLowerCase()] ?? NaN);
  return Number.isFinite(v) && v <= Number.MAX_SAFE_INTEGER ? Math.floor(v) : null;
}

/**
 * Parse a duration: milliseconds as a number, or text like `500ms`, `10s`, `5m`, `1h`, `1d`.
 * A bare number in text means seconds (`"10"` is ten seconds).
 * @example parseDuration('1.5s') // 1500
 */
export function parseDuration(text: string | number): number | null {
  if (typeof text === 'number') return Number.isFinite(text) && text >= 0 ? Math.floor(text) : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$/i.exec(text);
  if (!m) return null;
  const v = Number(m[1]) * (TIME[(m[2] ?? 's').toLowerCase()] ?? NaN);
  return Number.isFinite(v) && v <= Number.MAX_SAFE_INTEGER ? Math.floor(v) : null;
}

/** Parse a CPU count (`1`, `0.5`, `"1.5"`). */
export function parseCpus(text: string | number): number | null {
  const v = typeof text === 'number' ? text : /^\s*\d+(?:\.\d+)?\s*$/.test(text) ? Number(text) : NaN;
  return Number.isFinite(v) && v > 0 ? v : null;
}

/** Format bytes for people: `512.0 MiB`. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}
