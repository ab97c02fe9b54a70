import type { Command } from 'commander';
import { client } from '../daemon-client.js';
import { action } from '../action.js';

export function register(program: Command): void {
  program
    .command('mcp')
    .description(
      'serve realm to an agent over MCP on stdio (tools: run_code, create_sandbox, exec, read_file, write_file, list_files, destroy_sandbox)',
    )
    .action(
      action(async () => {
        // Loaded here, not at start-up: every other command would pay for the MCP SDK.
        const [{ StdioServerTransport }, { createMcpServer }] = await Promise.all([
          import('@modelcontextprotocol/sdk/server/stdio.js'),
          import('../../mcp/server.js'),
        ]);
        const server = createMcpServer(await client());
        await server.connect(new StdioServerTransport());
      }),
    );
}
