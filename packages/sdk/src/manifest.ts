/**
 * Signed manifests: a node's desired state, signed with the owner's ed25519 key (`realm apply`
 * signs; this posts what was signed), and the owner keys the node trusts. Admin only.
 *
 * @example
 *   const c = new Client();
 *   const { current, drift } = await c.manifest.status();
 *   await c.manifest.apply({ manifest, signature, publicKey, version: manifest.version });
 *   await c.manifest.trust('realm-ed25519:…');
 */
import type { Client } from './client.js';

/** A service in manifest form: every field explicit, sizes in bytes, durations in ms. */
export interface ManifestService {
  image: string;
  /** The image's digest (hex): the node refuses the manifest unless the image is exactly this. */
  sha256?: string;
  command: string;
  port: number;
  replicas: number;
  memory: number;
  cpus: number;
  pids: number;
  env: Record<string, string>;
  tags: string[];
  visibility: 'local' | 'public';
  health: { path?: string; interval: number; timeout: number; threshold: number };
  restart: { delay: number; max_delay: number };
  /** Absent: replicas keep running on a node cut off from etcd. */
  disconnect?: { stop_after: number };
}

/**
 * A service from a package (`realm package create`) in manifest form: the `.realm` file by sha256
 * (hex; the package says what runs and its mounts), and the replica count. Upload the file to the
 * blob store (`blobs.put`) before applying, unless the node has it.
 */
export interface ManifestPackageService {
  package_sha256: string;
  replicas: number;
}

/** A wasm app in manifest form: its module by sha256 (hex), memory in bytes, timeout in ms. */
export interface ManifestApp {
  sha256: string;
  memory: number;
  fuel?: number;
  timeout: number;
  visibility: 'local' | 'public';
  replicas: number;
}

/** The signed document. */
export interface SignedManifest {
  kind: 'realm-manifest';
  version: number;
  services: Record<string, ManifestService | ManifestPackageService>;
  apps?: Record<string, ManifestApp>;
}

export interface TrustedKey {
  publicKey: string;
  fingerprint: string;
  how: 'first-use' | 'explicit';
  addedAt: number;
}

export interface ServiceChange {
  name: string;
  change: 'added' | 'removed' | 'changed';
  /** 'app': a wasm app; absent: a service. */
  kind?: 'app';
  fields: { field: string; from: unknown; to: unknown }[];
}

export interface ManifestStatus {
  trusted: TrustedKey[];
  firstUseOpen: boolean;
  current: { version: number; owner: { publicKey: string; fingerprint: string }; appliedAt: string; appliedBy: string } | null;
  drift: ServiceChange[];
  /** The applied manifest's services as they are now (what `realm manifest export` writes). */
  services: Record<string, ManifestService | ManifestPackageService>;
  /** Services made ad hoc, never in a manifest (apply leaves them alone). */
  unmanaged: Record<string, ManifestService | ManifestPackageService>;
  /** The applied manifest's wasm apps as they are now. */
  apps: Record<string, ManifestApp>;
  /** Apps pushed ad hoc, never in a manifest (apply leaves them alone). */
  unmanagedApps: Record<string, ManifestApp>;
}

export interface ManifestApplied {
  version: number;
  owner: { publicKey: string; fingerprint: string };
  trusted: 'first-use' | 'already';
  changes: ServiceChange[];
}

export class Manifest {
  constructor(private readonly c: Client) {}

  status(): Promise<ManifestStatus> {
    return this.c.request<ManifestStatus>('GET', '/v1/manifest');
  }

  /** Apply a signed manifest; refused with a ManifestError (nothing changed) when any check fails. */
  apply(body: {
    manifest: SignedManifest | Record<string, unknown>;
    signature: string;
    publicKey: string;
    version: number;
    /** The apps' module bytes, base64, by sha256 (hex); a module the node keeps need not be sent. */
    modules?: Record<string, string>;
  }): Promise<ManifestApplied> {
    return this.c.request<ManifestApplied>('POST', '/v1/manifest', body);
  }

  /** What applying these services and apps (each package and app module as its sha256) would change (nothing is changed). */
  diff(
    services: Record<string, unknown>,
    apps: Record<string, unknown> = {},
  ): Promise<{ changes: ServiceChange[]; unmanaged: string[]; unmanagedApps: string[] }> {
    return this.c.request('POST', '/v1/manifest/diff', { services, apps });
  }

  trusted(): Promise<{ keys: TrustedKey[]; firstUseOpen: boolean }> {
    return this.c.request('GET', '/v1/trust');
  }

  /** Trust an owner key (`realm-ed25519:…`); ends trust on first use. */
  trust(publicKey: string): Promise<TrustedKey> {
    return this.c.request<TrustedKey>('POST', '/v1/trust', { publicKey });
  }

  /** Stop trusting a key, by fingerprint or public key. */
  revoke(key: string): Promise<TrustedKey> {
    return this.c.request<TrustedKey>('DELETE', `/v1/trust?key=${encodeURIComponent(key)}`);
  }
}
