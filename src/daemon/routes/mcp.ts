/** MCP over streamable HTTP at /mcp, stateless: a fresh server and transport per request. */
import type { Hono } from 'hono';
import { WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js';
import type { Client } from '@realm/sdk';
import { createMcpServer } from '../../mcp/server.js';

/** `client` reaches this daemon's own API (the MCP tools are written over the SDK). */
export function mcpRoutes(app: Hono, client: () => Client): void {
  app.all('/mcp', async (c) => {
    const server = createMcpServer(client());
    const transport = new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    try {
      return await transport.handleRequest(c.req.raw);
    } finally {
      void server.close();
    }
  });
}
