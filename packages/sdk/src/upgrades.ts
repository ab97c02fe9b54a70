/**
 * Upgrades of realm itself: post a signed release statement (its tarball uploaded as a blob
 * first; `realm upgrade` does both) and follow each node's phase and outcome. Admin only.
 *
 * @example
 *   const c = new Client();
 *   const { digest } = await c.blobs.put('./realm-2.tgz');
 *   await c.upgrades.create({ statement, signature });
 *   const { nodes } = await c.upgrades.status();
 */
import type { Client } from './client.js';

/** The signed document. */
export interface ReleaseStatement {
  kind: 'realm-release';
  version: number;
  /** `sha256:HEX` of the tarball. */
  digest: string;
  /** `linux/x86_64`. */
  platform: string;
  /** The owner key, `realm-ed25519:…`. */
  owner: string;
}

export type UpgradePhase = 'verifying' | 'installing' | 'restarting' | 'succeeded' | 'rolled-back' | 'refused' | 'failed';

export interface UpgradeOutcome {
  version: number;
  /** succeeded, rolled-back, refused and failed are final. */
  phase: UpgradePhase;
  code?: string;
  message: string;
  at: string;
  /** The request it answers (what `create` returned). */
  request?: string;
}

export interface NodeUpgradeStatus {
  node: string;
  /** The release it runs (0: the one it was installed with). */
  version: number;
  platform: string;
  last: UpgradeOutcome | null;
}

export class Upgrades {
  constructor(private readonly c: Client) {}

  status(): Promise<{ nodes: NodeUpgradeStatus[] }> {
    return this.c.request('GET', '/v1/upgrades');
  }

  /** Ask the targets (by id and/or tag; none: every node) to upgrade; refused with an UpgradeError when a check fails. */
  create(body: {
    statement: ReleaseStatement | Record<string, unknown>;
    signature: string;
    nodes?: string[];
    tags?: string[];
  }): Promise<{ version: number; digest: string; nodes: string[]; request: string }> {
    return this.c.request('POST', '/v1/upgrades', body);
  }
}
