/**
 * A table with a search box and sortable columns, and optional row selection (bulk actions).
 * Sorting: click (or Enter on) a column header; again reverses. Search matches any column's text.
 */
import type { ComponentChildren, JSX } from 'preact';
import { useMemo, useState } from 'preact/hooks';

export interface Column<T> {
  key: string;
  label: string;
  /** The cell; default: String(row[key]). */
  render?: (row: T) => ComponentChildren;
  /** The value sorted on; omit for a column that does not sort. */
  sort?: (row: T) => string | number;
  /** Text the search looks at; default: the sort value. */
  text?: (row: T) => string;
  /** A narrow column aligned right (numbers). */
  numeric?: boolean;
}

export interface TableProps<T> {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  /** Accessible name of the table. */
  label: string;
  /** Show a search box (default true). */
  search?: boolean;
  /** Initial sort column and direction. */
  initialSort?: { key: string; desc?: boolean };
  /** Selectable rows: the selected keys and their setter (bulk actions live outside). */
  selected?: Set<string>;
  onSelect?: (keys: Set<string>) => void;
  /** What to show with no rows. */
  empty?: ComponentChildren;
  /** Controls placed beside the search box (filters). */
  toolbar?: ComponentChildren;
}

/** A plain cell: strings and numbers as they are, anything else as JSON. */
function cellText(v: unknown): string {
  if (v === null || v === undefined) return '';
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : JSON.stringify(v);
}

export function Table<T>(props: TableProps<T>): JSX.Element {
  const [query, setQuery] = useState('');
  const [sort, setSort] = useState(props.initialSort ?? null);
  const { columns, rows, selected, onSelect } = props;

  const shown = useMemo(() => {
    const q = query.trim().toLowerCase();
    let out = rows;
    if (q) {
      out = rows.filter((r) =>
        columns.some((c) => {
          const t = c.text?.(r) ?? (c.sort ? String(c.sort(r)) : '');
          return t.toLowerCase().includes(q);
        }),
      );
    }
    const col = sort ? columns.find((c) => c.key === sort.key) : undefined;
    if (col?.sort) {
      const by = col.sort;
      const dir = sort?.desc ? -1 : 1;
      out = [...out].sort((a, b) => {
        const x = by(a);
        const y = by(b);
        return (x < y ? -1 : x > y ? 1 : 0) * dir;
      });
    }
    return out;
  }, [rows, columns, query, sort]);

  const toggleSort = (key: string): void => setSort((s) => (s?.key === key ? { key, desc: !s.desc } : { key, desc: false }));

  const allSelected = selected !== undefined && shown.length > 0 && shown.every((r) => selected.has(props.rowKey(r)));
  const selectAll = (on: boolean): void => {
    if (!onSelect || !selected) return;
    const next = new Set(selected);
    for (const r of shown) {
      if (on) next.add(props.rowKey(r));
      else next.delete(props.rowKey(r));
    }
    onSelect(next);
  };
  const selectOne = (key: string, on: boolean): void => {
    if (!onSelect || !selected) return;
    const next = new Set(selected);
    if (on) next.add(key);
    else next.delete(key);
    onSelect(next);
  };

  return (
    <div class="table-wrap">
      {(props.search !== false || props.toolbar) && (
        <div class="toolbar">
          {props.search !== false && (
            <input
              type="search"
              class="search"
              placeholder="Search…"
              aria-label={`Search ${props.label}`}
              value={query}
              onInput={(e) => setQuery(e.currentTarget.value)}
            />
          )}
          {props.toolbar}
        </div>
      )}
      <div class="table-scroll">
        <table aria-label={props.label}>
          <thead>
            <tr>
              {selected && (
                <th class="select">
                  <input
                    type="checkbox"
                    aria-label="Select all shown"
                    checked={allSelected}
                    onChange={(e) => selectAll(e.currentTarget.checked)}
                  />
                </th>
              )}
              {columns.map((c) => {
                const active = sort?.key === c.key;
                return (
                  <th
                    key={c.key}
                    class={c.numeric ? 'num' : undefined}
                    aria-sort={active ? (sort?.desc ? 'descending' : 'ascending') : c.sort ? 'none' : undefined}
                  >
                    {c.sort ? (
                      <button type="button" class="sort" onClick={() => toggleSort(c.key)}>
                        {c.label}
                        <span aria-hidden="true">{active ? (sort?.desc ? ' ▼' : ' ▲') : ''}</span>
                      </button>
                    ) : (
                      c.label
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => {
              const key = props.rowKey(r);
              return (
                <tr key={key} class={selected?.has(key) ? 'selected' : undefined}>
                  {selected && (
                    <td class="select">
                      <input
                        type="checkbox"
                        aria-label={`Select ${key}`}
                        checked={selected.has(key)}
                        onChange={(e) => selectOne(key, e.currentTarget.checked)}
                      />
                    </td>
                  )}
                  {columns.map((c) => (
                    <td key={c.key} class={c.numeric ? 'num' : undefined}>
                      {c.render ? c.render(r) : cellText((r as Record<string, unknown>)[c.key])}
                    </td>
                  ))}
                </tr>
              );
            })}
          </tbody>
        </table>
        {shown.length === 0 && <p class="empty">{rows.length === 0 ? (props.empty ?? 'Nothing here yet.') : 'No match.'}</p>}
      </div>
    </div>
  );
}
