/**
 * What a node keeps about its own upgrades, in DATA/upgrade/state.json (0600, written whole by
 * rename; read by the process that hands the daemon over, too): the release it runs, the request
 * it acted on last (one is acted on once: a release rolled back is not tried again when its
 * request is seen once more after the restart), the hand-over under way and the last outcome.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type UpgradePhase = 'verifying' | 'installing' | 'restarting' | 'succeeded' | 'rolled-back' | 'refused' | 'failed';

export const FINAL_PHASES: readonly UpgradePhase[] = ['succeeded', 'rolled-back', 'refused', 'failed'];

export interface UpgradeOutcome {
  version: number;
  phase: UpgradePhase;
  /** The error's code when refused, rolled back or failed. */
  code?: string;
  message: string;
  /** ISO 8601. */
  at: string;
  /** The request (`POST /v1/upgrades`) it answers: how `realm upgrade` tells its outcome from an older one's. */
  request?: string;
}

export interface Handover {
  version: number;
  /** The tree the new daemon runs from (`<root>/versions/N`). */
  tree: string;
  /** What `current` pointed to before (null: it did not exist). */
  previousLink: string | null;
  /** The CLI entry point of the release running before: rolled back to. */
  previousMain: string;
}

export interface UpgradeState {
  /** The release this node runs (0: the one it was installed with, never upgraded). */
  version: number;
  handover: Handover | null;
  last: UpgradeOutcome | null;
  /** The request acted on last: seen again (etcd keeps it), it is not acted on again. */
  request?: string;
  /** The last outcome was recorded by the hand-over's process, which has no event bus: the next daemon announces it. */
  unannounced?: boolean;
}

export class UpgradeStateFile {
  readonly file: string;

  constructor(dataDir: string) {
    const dir = join(dataDir, 'upgrade');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'state.json');
  }

  /** Read fresh each time: the other process of a hand-over writes it too. */
  get(): UpgradeState {
    try {
      return JSON.parse(readFileSync(this.file, 'utf8')) as UpgradeState;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`${this.file} is not an upgrade state (${(e as Error).message}); repair or remove it`);
      return { version: 0, handover: null, last: null };
    }
  }

  update(change: (s: UpgradeState) => void): UpgradeState {
    const next = this.get();
    change(next);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(next), { mode: 0o600, flush: true });
    renameSync(tmp, this.file);
    return next;
  }

  /** Record an outcome (or a phase under way) of `version`. */
  outcome(version: number, phase: UpgradePhase, message: string, code?: string): UpgradeState {
    return this.update((s) => {
      s.last = {
        version,
        phase,
        message,
        at: new Date().toISOString(),
        ...(code ? { code } : {}),
        ...(s.request ? { request: s.request } : {}),
      };
    });
  }
}
