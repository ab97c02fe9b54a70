/** The preview-link routes in the OpenAPI document (see openapi.ts) and their answers. */
import { z } from 'zod';
import type { Op } from './openapi.js';
import { createUrlSchema } from './routes/preview-urls.js';

const time = z.string().describe('ISO 8601');

export const previewUrlResponse = z.object({
  id: z.string(),
  port: z.number().int(),
  url: z
    .string()
    .describe(
      'http://<port>-<sandbox>.<domain>:<gateway port>/; on creation, with the signed token (?realm_preview=…) unless public',
    ),
  public: z.boolean(),
  createdAt: time,
  expiresAt: time,
});
export const previewUrlListResponse = z.object({ urls: z.array(previewUrlResponse) });
export const previewRevokedResponse = z.object({ revoked: z.number().int().describe('how many links were revoked') });

export const PREVIEW_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/sandboxes/{id}/urls': {
    post: {
      id: 'createPreviewUrl',
      res: 'PreviewUrl',
      body: createUrlSchema,
      ok: 201,
      summary:
        "A signed, expiring link (default 1h, no cap) to a port on the sandbox's own loopback through the gateway, by Host <port>-<sandbox>.<domain>; opening it sets an HttpOnly SameSite cookie for that host and redirects to the clean URL. public: anyone may open the port while it lives. Namespace-driver sandboxes only (DRIVER_UNAVAILABLE otherwise)",
      params: ['id'],
    },
    get: {
      id: 'listPreviewUrls',
      res: 'PreviewUrlList',
      summary: "The sandbox's live preview links (without tokens)",
      params: ['id'],
    },
  },
  '/v1/sandboxes/{id}/urls/{port}': {
    delete: {
      id: 'revokePreviewUrls',
      res: 'PreviewRevoked',
      summary: 'Revoke every link to the port, and the cookies they were exchanged for',
      params: ['id', 'port'],
    },
  },
};
