/** Media types realm understands, the shapes of manifests/indexes/configs, and size caps. */
import { z } from 'zod';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export const MANIFEST_TYPES: string[] = [MT.ociManifest, MT.dockerManifest];
export const INDEX_TYPES: string[] = [MT.ociIndex, MT.dockerList];
export const CONFIG_TYPES: string[] = [MT.ociConfig, MT.dockerConfig];
/** Layer types: plain tar, or gzip'd (the content is sniffed too, since docker's type says gzip either way). */
export const LAYER_TYPES: string[] = [MT.ociLayer, MT.ociLayerGzip, MT.dockerLayer];

/** Manifests, indexes and configs larger than this are refused (they are small JSON documents). */
export const MAX_JSON_BYTES = 4 * 1024 * 1024;
/** Default cap on one layer (compressed and uncompressed), overridable per store. */
export const DEFAULT_MAX_LAYER_BYTES = 8 * 1024 ** 3;

const digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'a sha256 digest');
export const descriptorSchema = z
  .object({
    mediaType: z.string(),
    digest,
    size: z.number().int().nonnegative(),
    platform: z.object({ architecture: z.string(), os: z.string(), variant: z.string().optional() }).loose().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  })
  .loose();
export type Descriptor = z.infer<typeof descriptorSchema>;

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    config: descriptorSchema,
    layers: z.array(descriptorSchema).max(256),
  })
  .loose();
export type Manifest = z.infer<typeof manifestSchema>;

export const indexSchema = z
  .object({
    schemaVersion: z.literal(2),
    mediaType: z.string().optional(),
    manifests: z.array(descriptorSchema).max(1024),
  })
  .loose();
export type Index = z.infer<typeof indexSchema>;

export const configSchema = z
  .object({
    architecture: z.string().optional(),
    os: z.string().optional(),
    created: z.string().optional(),
    config: z
      .object({
        Env: z.array(z.string()).nullish(),
        Entrypoint: z.array(z.string()).nullish(),
        Cmd: z.array(z.string()).nullish(),
        WorkingDir: z.string().nullish(),
      })
      .loose()
      .nullish(),
    rootfs: z
      .object({ type: z.string(), diff_ids: z.array(digest) })
      .loose()
      .optional(),
  })
  .loose();
export type ImageConfig = z.infer<typeof configSchema>;
