/** MCP over streamable HTTP at /mcp, stateless: a fresh server and transport per request. */
import type { Hono } from 'hono';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Client } from '@realm/sdk';
import { createMcpServer } from '../../mcp/server.js';
import { type Principal, principal } from '../principal.js';

/** `client` reaches this daemon's own API as the caller (the MCP tools are written over the SDK). */
export function mcpRoutes(app: Hono, client: (as: Principal) => Client): void {
  app.all('/mcp', async (c) => {
    const server = createMcpServer(client(principal(c)));
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      const res = await transport.handleRequest(c.req.raw);
      // An answer without a body (202 to notifications, 200 to DELETE) says so, and so carries
      // no content type (hygiene.ts), as the OpenAPI document states.
      if (res.body !== null) return res;
      const headers = new Headers(res.headers);
      headers.set('content-length', '0');
      return new Response(null, { status: res.status, headers });
    } finally {
      void server.close();
    }
  });
}
