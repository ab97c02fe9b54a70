/**
 * Compiled modules, cached by the sha256 of the module's bytes (computed here, never taken from a
 * runner) and the engine's configuration. Compiling a 170 KB C module takes ~60 ms; loading its
 * compiled form ~1 ms. What is stored is the runner's compiler output, sent before any of the
 * module ran (see protocol.ts), so a cached entry is exactly what compiling the same bytes gives.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Entries kept (least recently used go first). */
const MAX_ENTRIES = 256;
const MAX_BYTES = 512 * 1024 ** 2;

export class CompiledCache {
  private writes = 0;

  constructor(
    private readonly dir: string,
    /** What the compiled form depends on besides the bytes (Wasmtime's version, the engine's settings). */
    private readonly engineKey: string,
  ) {}

  key(wasm: Buffer, fuel: boolean): string {
    const h = createHash('sha256').update(wasm).digest('hex');
    return `${h}-${this.engineKey}-${fuel ? 'fuel' : 'plain'}`;
  }

  get(key: string): Buffer | undefined {
    const path = join(this.dir, key);
    try {
      const bytes = readFileSync(path);
      const now = new Date();
      utimesSync(path, now, now);
      return bytes;
    } catch {
      return undefined;
    }
  }

  put(key: string, bytes: Buffer): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const tmp = join(this.dir, `.${key}.${process.pid}.tmp`);
      writeFileSync(tmp, bytes, { mode: 0o600 });
      renameSync(tmp, join(this.dir, key));
      if (++this.writes % 16 === 0) this.prune();
    } catch {
      /* a cache: a failed write costs the next run a compile */
    }
  }

  /** Keep the newest entries within MAX_ENTRIES and MAX_BYTES. */
  prune(): void {
    let entries: { name: string; size: number; used: number }[];
    try {
      entries = readdirSync(this.dir).map((name) => {
        const st = statSync(join(this.dir, name));
        return { name, size: st.size, used: st.mtimeMs };
      });
    } catch {
      return;
    }
    entries.sort((a, b) => b.used - a.used);
    let bytes = 0;
    entries.forEach((e, i) => {
      bytes += e.size;
      if (i >= MAX_ENTRIES || bytes > MAX_BYTES || e.name.startsWith('.')) rmSync(join(this.dir, e.name), { force: true });
    });
  }
}
