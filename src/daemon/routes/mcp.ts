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
      return await transport.handleRequest(c.req.raw);
    } finally {
      void server.close();
    }
  });
}
