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
}

export interface PackageRef {
  name: string;
  version: string;
  /** sha256 of the `.realm` file, as in the blob store. */
  digest: string;
  mounts: PackageMountRef[];
}
