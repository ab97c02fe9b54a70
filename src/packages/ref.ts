/** What a service deployed from a package keeps of it (in its desired state, services/spec.ts). */
import type { MountKind } from './manifest.js';

export interface PackageMountRef {
  kind: MountKind;
  /** Where it is in each replica's sandbox. */
  path: string;
  /** static and config: the content digest of the tree (`sha256:<hex>`), stored once under DATA/packages/trees. */
  tree?: string;
  /** state: the volume that holds it. */
  volume?: string;
  /** state, in a cluster: the node the volume lives on (every replica runs there). */
  node?: string;
}

export interface PackageRef {
  name: string;
  version: string;
  /** sha256 of the `.realm` file, as in the blob store. */
  digest: string;
  mounts: PackageMountRef[];
}

/** In a cluster: the node a package's state volume lives on, which every replica must run on (none: any node). */
export function stateNode(pkg: PackageRef | undefined): { node: string; volume: string } | undefined {
  const m = pkg?.mounts.find((x) => x.kind === 'state' && x.node !== undefined);
  return m?.node === undefined ? undefined : { node: m.node, volume: m.volume ?? m.path };
}
