import type { Command } from 'commander';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { createMcpServer } from '../../mcp/server.js';
import { client } from '../daemon-client.js';
import { action } from '../action.js';

export function register(program: Command): void {
  program
    .command('mcp')
    .description('serve realm to an agent over MCP on stdio (tools: run_code, create_sandbox, exec, read_file, write_file, list_files, destroy_sandbox)')
    .action(action(async () => {
      const server = createMcpServer(await client());
      await server.connect(new StdioServerTransport());
    }));
}
