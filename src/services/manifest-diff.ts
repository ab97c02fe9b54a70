/**
 * What differs between two sets of services in manifest form: services added, removed and
 * changed, and for a changed one each field (`health.interval`, `env.TOKEN`, …) with its two
 * values. Environment values are not shown (they may be secrets): only whether one is set.
 */
/** A service or an app in manifest form. */
type Entry = object;

export interface FieldChange {
  field: string;
  from: unknown;
  to: unknown;
}

export interface ServiceChange {
  name: string;
  change: 'added' | 'removed' | 'changed';
  /** Set for a wasm app (`[apps.NAME]`); a service has none. */
  kind?: 'app';
  /** For `changed`: each field that differs. */
  fields: FieldChange[];
}

/** Leaves of a service as `a.b` → value (arrays whole). */
function flatten(s: Entry): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const walk = (v: unknown, at: string): void => {
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, at ? `${at}.${k}` : k);
    } else out.set(at, v);
  };
  walk(s, '');
  return out;
}

const shown = (field: string, v: unknown): unknown => (field.startsWith('env.') && v !== undefined ? '(set)' : (v ?? null));

/** The fields that differ between two services, in a stable order. */
export function fieldChanges(from: Entry, to: Entry): FieldChange[] {
  const a = flatten(from);
  const b = flatten(to);
  const keys = [...new Set([...a.keys(), ...b.keys()])].sort();
  const out: FieldChange[] = [];
  for (const k of keys) {
    const x = a.get(k);
    const y = b.get(k);
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    out.push({ field: k, from: shown(k, x), to: shown(k, y) });
  }
  return out;
}

/**
 * Changes that take `from` to `to`. Services of `from` that `to` lacks count as removed only when
 * `removable` says so (apply removes only what a manifest put there).
 */
export function diffServices(
  from: Record<string, Entry>,
  to: Record<string, Entry>,
  removable: (name: string) => boolean = () => true,
): ServiceChange[] {
  const out: ServiceChange[] = [];
  for (const name of [...new Set([...Object.keys(from), ...Object.keys(to)])].sort()) {
    const a = from[name];
    const b = to[name];
    if (a && b) {
      const fields = fieldChanges(a, b);
      if (fields.length) out.push({ name, change: 'changed', fields });
    } else if (b) out.push({ name, change: 'added', fields: [] });
    else if (a && removable(name)) out.push({ name, change: 'removed', fields: [] });
  }
  return out;
}

/** The same for apps: each change marked `kind: 'app'`. */
export function diffApps(
  from: Record<string, Entry>,
  to: Record<string, Entry>,
  removable: (name: string) => boolean = () => true,
): ServiceChange[] {
  return diffServices(from, to, removable).map((c) => ({ ...c, kind: 'app' as const }));
}
