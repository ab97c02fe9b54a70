/** The images and languages APIs' shapes (GET /v1/images, /v1/images/built, /v1/languages). */

export interface ImageInfo {
  names: string[];
  digest: string;
  size: number;
  unpackedSize: number;
  layers: number;
  createdAt: string;
  /** `import`, `pull`, `rootfs`, or `build`. */
  source: string;
}

export interface BuiltImage {
  name: string;
  hash: string;
  from: string;
  packages: string[];
  bytes: number;
  createdAt: number;
  digest: string;
}

export interface BuildProgress {
  phase: string;
  message: string;
  percent: number;
}

export interface BuildResult {
  name: string;
  hash: string;
  cache: 'installed' | 'tarball' | 'built';
  bytes: number;
  digest: string;
  rootfs: string;
  ms: number;
}

export type PullProgress =
  | {
      type: 'layer';
      phase: 'download' | 'exists' | 'unpack';
      digest: string;
      index: number;
      count: number;
      bytes: number;
      total: number;
    }
  | { type: 'status'; message: string };
