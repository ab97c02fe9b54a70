/** The signed-manifest and trust routes in the OpenAPI document (see openapi.ts). */
import { applyManifestSchema, diffManifestSchema, trustKeySchema } from '../services/manifest.js';
import type { Op } from './openapi.js';

export const MANIFEST_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/manifest': {
    get: {
      id: 'getManifest',
      res: 'ManifestStatus',
      summary:
        "The manifest applied last (version, owner key), the keys this node trusts, drift (what live changes made of it) and the services' and wasm apps' desired state in manifest form (admin)",
    },
    post: {
      id: 'applyManifest',
      body: applyManifestSchema,
      res: 'ManifestApplied',
      summary:
        'Apply a signed manifest: key trusted (or trusted on first use), signature, manifest, a version above the last of that key and every digest (images; the package of each packaged service, read from the blob store by its `package_sha256` and hashed again; the module bytes of each app, sent in `modules` or kept by the node) are checked before anything changes; then services (a packaged one deployed with its mounts, as POST /v1/packages does) and wasm apps are created, updated, scaled, and those the previous manifest had and this one drops are removed (admin)',
    },
  },
  '/v1/manifest/diff': {
    post: {
      id: 'diffManifest',
      body: diffManifestSchema,
      res: 'ManifestDiff',
      summary:
        'What applying these services and apps (packages and modules as sha256) would change on this node (nothing is changed; no signature needed) (admin)',
    },
  },
  '/v1/trust': {
    get: { id: 'listTrustedKeys', res: 'TrustList', summary: 'The owner keys whose signed manifests this node takes (admin)' },
    post: {
      id: 'trustKey',
      body: trustKeySchema,
      res: 'TrustedKey',
      ok: 201,
      summary: 'Trust an owner key (realm-ed25519:…); this also ends trust on first use (admin)',
    },
    delete: {
      id: 'revokeKey',
      res: 'TrustedKey',
      query: ['key'],
      summary:
        'Stop trusting a key (by fingerprint or public key); its versions are remembered, so re-trusting it replays nothing (admin)',
    },
  },
};
