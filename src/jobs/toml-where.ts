/**
 * Where a key of a TOML document is: the line to name in an error about it. smol-toml gives
 * values, not positions, so this reads the lines the way a person would: table headers
 * (`[run]`, `[[inputs]]`, counting each array-of-tables entry) and `key =` lines under them,
 * with dotted keys and inline tables on one line taken as belonging to that line.
 *
 * @example
 * lineOf('name = "x"\n[run]\nmemory = 5\n', ['run', 'memory']); // 3
 */

const HEADER = /^\s*\[(\[)?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$/;
const KEY = /^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(\s*\.\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*\s*=/;

const unquote = (k: string): string => k.trim().replace(/^["']|["']$/g, '');
const splitKey = (k: string): string[] => k.split('.').map(unquote);

/**
 * The 1-based line of `path` (keys and array indexes, as zod reports them): the key's own line,
 * else the nearest enclosing table's header, else undefined (a document-level problem).
 */
export function lineOf(source: string, path: readonly PropertyKey[]): number | undefined {
  const want = path.filter((p): p is string | number => typeof p === 'string' || typeof p === 'number');
  const lines = source.split('\n');
  let table: (string | number)[] = [];
  const seen = new Map<string, number>(); // array-of-tables name → entries so far
  let best: { line: number; depth: number } | undefined;
  const consider = (at: (string | number)[], line: number): void => {
    let depth = 0;
    while (depth < at.length && depth < want.length && at[depth] === want[depth]) depth++;
    // Only a prefix of the wanted path counts, and the deepest wins (a key beats its table).
    if (depth === at.length && depth > 0 && (!best || depth > best.depth)) best = { line, depth };
  };
  lines.forEach((text, i) => {
    const h = HEADER.exec(text);
    if (h) {
      const name = splitKey(h[2] ?? '');
      if (h[1]) {
        const n = seen.get(name.join('.')) ?? 0;
        seen.set(name.join('.'), n + 1);
        table = [...name, n];
      } else {
        table = name;
      }
      consider(table, i + 1);
      return;
    }
    const k = KEY.exec(text);
    if (k) consider([...table, ...splitKey(k[0].slice(0, -1))], i + 1);
  });
  return best?.line;
}
