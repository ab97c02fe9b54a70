/** The human form of a log line (`realm serve --log-format text`, the default on stderr). */

/** Fields every line has, shown in the line's head rather than as key=value. */
const HEAD = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

const show = (v: unknown): string => {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v && typeof v === 'object' && 'message' in v && typeof v.message === 'string') return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
};

/**
 * `realm: WARN sandbox sb-1 denied example.com:443 (not on its allow-list) sandboxId=sb-1`: the
 * level (but info's), the message, then the other fields as key=value. No time: stderr usually
 * goes to a journal that stamps it; the JSON file keeps it.
 */
export function textLine(rec: Record<string, unknown>): string {
  const level = typeof rec.level === 'string' && rec.level !== 'info' ? `${rec.level.toUpperCase()} ` : '';
  return `realm: ${level}${typeof rec.msg === 'string' ? rec.msg : ''}${fieldsText(rec)}\n`;
}

/** The fields of a line but its head (level, time, msg, pid), as ` key=value` each. */
export function fieldsText(rec: Record<string, unknown>): string {
  let out = '';
  for (const [k, v] of Object.entries(rec)) if (!HEAD.has(k) && v !== undefined) out += ` ${k}=${show(v)}`;
  return out;
}
