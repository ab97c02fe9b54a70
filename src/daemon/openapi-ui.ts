/** The dashboard's session routes in the OpenAPI document (see ui-session.ts, openapi.ts). */
import { z } from 'zod';
import type { Op } from './openapi.js';
import { loginSchema } from './ui-session.js';

/** Who a dashboard session acts as. */
export const uiSessionResponse = z.object({
  /** `uid:N`, as tokens act. */
  principal: z.string(),
  admin: z.boolean(),
  /** When the session ends (ISO 8601); null when the request came with a token, not a session. */
  expiresAt: z.string().nullable(),
});

export const UI_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/ui/session': {
    post: {
      id: 'createUiSession',
      body: loginSchema,
      res: 'UiSession',
      open: true,
      summary:
        'Sign the dashboard in: exchange a token for a session cookie (realm_session: HttpOnly, SameSite=Strict, Path=/, Secure over TLS; 12 h). The cookie is taken only on requests that also send "X-Realm-UI: 1" (WebSocket upgrades: only with this origin as Origin); this request must send that header too',
    },
    get: {
      id: 'getUiSession',
      res: 'UiSession',
      summary: 'Who the dashboard session (cookie and "X-Realm-UI: 1") or the token acts as; 401 when neither holds',
    },
    delete: {
      id: 'deleteUiSession',
      open: true,
      ok: 204,
      summary: 'Sign out: the daemon forgets the session and the cookie is cleared (send "X-Realm-UI: 1")',
    },
  },
};
