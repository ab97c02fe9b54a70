/**
 * What a node keeps about signed manifests, in DATA/manifest/state.json (0600, written whole by
 * rename): the owner keys it trusts, the highest version applied per key (kept when a key is
 * revoked, so trusting it again cannot replay an old manifest), whether trust on first use is
 * still open, and the manifest applied last (the desired state it set).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from './manifest-spec.js';

export interface TrustedKey {
  publicKey: string;
  fingerprint: string;
  /** `first-use`: the key of the first signed manifest; `explicit`: `realm node trust`. */
  how: 'first-use' | 'explicit';
  addedAt: number;
}

export interface AppliedManifest {
  manifest: Manifest;
  signature: string;
  publicKey: string;
  fingerprint: string;
  appliedAt: number;
  /** The principal that posted it. */
  appliedBy: string;
}

export interface ManifestState {
  trusted: TrustedKey[];
  /** Set once any key was trusted: from then on, only `realm node trust` adds one. */
  firstUseClosed: boolean;
  /** Fingerprint → the highest version applied with that key. */
  versions: Record<string, number>;
  current: AppliedManifest | null;
}

export class ManifestStateFile {
  private readonly file: string;
  private state: ManifestState;

  constructor(dataDir: string) {
    const dir = join(dataDir, 'manifest');
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.file = join(dir, 'state.json');
    let read: ManifestState | undefined;
    try {
      read = JSON.parse(readFileSync(this.file, 'utf8')) as ManifestState;
    } catch (e) {
      // Missing: a node that never saw a manifest. Unreadable: refuse to start rather than fall
      // back to trust on first use, which would let anyone's first manifest take the node.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`${this.file} is not a manifest state (${(e as Error).message}); repair or remove it`);
    }
    this.state = read ?? { trusted: [], firstUseClosed: false, versions: {}, current: null };
  }

  get(): ManifestState {
    return this.state;
  }

  /** Replace the state (durably) with what `change` makes of a copy of it. */
  update(change: (s: ManifestState) => void): ManifestState {
    const next = structuredClone(this.state);
    change(next);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(next), { mode: 0o600, flush: true });
    renameSync(tmp, this.file);
    this.state = next;
    return next;
  }
}
