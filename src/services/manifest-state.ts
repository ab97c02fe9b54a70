/**
 * What is kept about signed manifests: the owner keys trusted, the highest version applied per key
 * (kept when a key is revoked, so trusting it again cannot replay an old manifest), whether trust
 * on first use is still open, and the manifest applied last (the desired state it set). A lone
 * node keeps it in DATA/manifest/state.json (0600, written whole by rename); a cluster member in
 * etcd (cluster/manifest-state-etcd.ts), with the services a manifest applies.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
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

/** The state as read, and (in etcd) the revision it was read at: an apply writes it back only if unchanged since. */
export interface StateRead {
  state: ManifestState;
  /** The etcd key's mod revision as read; undefined when the key was absent (or the state is a file). */
  mod?: string | undefined;
}

/** Where the state is kept: a node's file, or the cluster's etcd. */
export interface ManifestStateStore {
  /** Whose trust it is, for messages: `this node` or `the cluster`. */
  readonly scope: string;
  start(): Promise<void>;
  /** As it is now (in etcd: read again at each call). */
  read(): Promise<StateRead>;
  /** Replace the state with what `change` makes of a copy of it (trust changes). */
  update(change: (s: ManifestState) => void): Promise<ManifestState>;
  close(): Promise<void>;
}

export const emptyState = (): ManifestState => ({ trusted: [], firstUseClosed: false, versions: {}, current: null });

/** DATA/manifest/state.json, whether it exists. */
export const stateFilePath = (dataDir: string): string => join(dataDir, 'manifest', 'state.json');

/** A node's own state file, described (`PATH (2 trusted key(s), version 3 applied)`); undefined when it has none. */
export function ownState(dataDir: string): string | undefined {
  const file = stateFilePath(dataDir);
  if (!existsSync(file)) return undefined;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as ManifestState;
    return `${file} (${s.trusted.length} trusted key(s), version ${s.current?.manifest.version ?? 'none'} applied)`;
  } catch (e) {
    return `${file} (unreadable: ${String(e)})`;
  }
}

export class ManifestStateFile implements ManifestStateStore {
  readonly scope = 'this node';
  private readonly file: string;
  private state: ManifestState;

  constructor(dataDir: string) {
    mkdirSync(join(dataDir, 'manifest'), { recursive: true, mode: 0o700 });
    this.file = stateFilePath(dataDir);
    let read: ManifestState | undefined;
    try {
      read = JSON.parse(readFileSync(this.file, 'utf8')) as ManifestState;
    } catch (e) {
      // Missing: a node that never saw a manifest. Unreadable: refuse to start rather than fall
      // back to trust on first use, which would let anyone's first manifest take the node.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`${this.file} is not a manifest state (${(e as Error).message}); repair or remove it`);
    }
    this.state = read ?? emptyState();
  }

  start(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  get(): ManifestState {
    return this.state;
  }

  read(): Promise<StateRead> {
    return Promise.resolve({ state: this.state });
  }

  update(change: (s: ManifestState) => void): Promise<ManifestState> {
    return Promise.resolve(this.write(change));
  }

  /** Replace the state (durably) with what `change` makes of a copy of it. */
  write(change: (s: ManifestState) => void): ManifestState {
    const next = structuredClone(this.state);
    change(next);
    const tmp = `${this.file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(next), { mode: 0o600, flush: true });
    renameSync(tmp, this.file);
    this.state = next;
    return next;
  }
}
