/**
 * realm as an MCP server, for agents: run code once, or keep a sandbox and exec, read, write and
 * list files in it. Built on the official MCP SDK and on realm's own SDK only, so it serves the
 * same over stdio (`realm mcp`) and over HTTP (the daemon's /mcp).
 */
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { type Client, RealmError, Sandbox, run } from '@realm/sdk';
import { VERSION } from '../version.js';

type Content = { content: { type: 'text'; text: string }[]; isError?: boolean };

const text = (value: unknown): Content => ({
  content: [{ type: 'text', text: typeof value === 'string' ? value : JSON.stringify(value, null, 2) }],
});

/** Tool errors come back as results with isError (what the model can read and act on). */
async function guard(fn: () => Promise<Content>): Promise<Content> {
  try {
    return await fn();
  } catch (e) {
    const msg = e instanceof RealmError ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
    return { ...text(msg), isError: true };
  }
}

/** Text with a unit, or a number of milliseconds (what many agents send). */
const duration = z
  .union([z.string().max(32), z.number().int().positive().max(86_400_000)])
  .describe('e.g. "10s", "500ms", "2m", or a number of milliseconds');

export function createMcpServer(client: Client): McpServer {
  const server = new McpServer({ name: 'realm', version: VERSION });
  const sandbox = (id: string): Promise<Sandbox> => Sandbox.get(id, client);

  server.registerTool(
    'run_code',
    {
      title: 'Run code',
      description:
        'Run a program once in a fresh isolated sandbox (no network) and get stdout, stderr, exit code and a verdict (ok, runtime-error, compile-error, timeout, oom, output-limit).',
      inputSchema: {
        language: z.string().describe("python, node, bash, c, … (see the daemon's /v1/languages)"),
        code: z.string(),
        stdin: z.string().optional(),
        timeout: duration.optional(),
      },
    },
    ({ language, code, stdin, timeout }) =>
      guard(async () => {
        const r = await run(
          { language, code, ...(stdin !== undefined ? { stdin } : {}), ...(timeout ? { timeout } : {}) },
          client,
        );
        return text({
          stdout: r.stdout,
          stderr: r.stderr,
          exitCode: r.exitCode,
          signal: r.signal,
          verdict: r.verdict,
          wallMs: r.wallMs,
          ...(r.compile && r.verdict === 'compile-error' ? { compileOutput: r.compile.stdout + r.compile.stderr } : {}),
        });
      }),
  );

  server.registerTool(
    'create_sandbox',
    {
      title: 'Create a sandbox',
      description:
        'Create a persistent isolated sandbox to exec commands and keep files in. Returns its id. Network is off unless network is "all".',
      inputSchema: {
        memory: z.string().max(16).optional().describe('e.g. "512m"'),
        network: z.enum(['none', 'all']).optional(),
        ttl: duration.optional().describe('destroyed after this long; default 1h'),
      },
    },
    ({ memory, network, ttl }) =>
      guard(async () => {
        const sb = await Sandbox.create(
          { ...(memory ? { memory } : {}), ...(network ? { network } : {}), ...(ttl ? { ttl } : {}) },
          client,
        );
        return text({ sandbox_id: sb.id, expiresAt: sb.info.expiresAt });
      }),
  );

  server.registerTool(
    'exec',
    {
      title: 'Run a command in a sandbox',
      description: 'Run a shell command (sh -c) in a sandbox, working directory /home/user, and get its output and exit code.',
      inputSchema: { sandbox_id: z.string(), command: z.string(), stdin: z.string().optional(), timeout: duration.optional() },
    },
    ({ sandbox_id, command, stdin, timeout }) =>
      guard(async () => {
        const r = await (
          await sandbox(sandbox_id)
        ).exec(command, { ...(stdin !== undefined ? { stdin } : {}), ...(timeout ? { timeout } : {}) });
        return text({ stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode, signal: r.signal, verdict: r.verdict });
      }),
  );

  server.registerTool(
    'read_file',
    {
      title: 'Read a file',
      description: 'Read a text file from a sandbox (path absolute, or relative to /home/user).',
      inputSchema: { sandbox_id: z.string(), path: z.string() },
    },
    ({ sandbox_id, path }) => guard(async () => text(await (await sandbox(sandbox_id)).files.readText(path))),
  );

  server.registerTool(
    'write_file',
    {
      title: 'Write a file',
      description: 'Write a text file in a sandbox, making missing directories (path absolute, or relative to /home/user).',
      inputSchema: { sandbox_id: z.string(), path: z.string(), content: z.string() },
    },
    ({ sandbox_id, path, content }) =>
      guard(async () => {
        await (await sandbox(sandbox_id)).files.write(path, content, { parents: true });
        return text(`wrote ${Buffer.byteLength(content)} bytes to ${path}`);
      }),
  );

  server.registerTool(
    'list_files',
    {
      title: 'List files',
      description: 'List a directory in a sandbox (default /home/user): name, type, size, mode.',
      inputSchema: { sandbox_id: z.string(), path: z.string().optional() },
    },
    ({ sandbox_id, path }) =>
      guard(async () => {
        const entries = await (await sandbox(sandbox_id)).files.list(path ?? '/home/user');
        return text(
          entries.map((e) => ({
            name: e.name,
            type: e.type,
            size: e.size,
            mode: e.mode,
            ...(e.target ? { target: e.target } : {}),
          })),
        );
      }),
  );

  server.registerTool(
    'destroy_sandbox',
    {
      title: 'Destroy a sandbox',
      description: 'Destroy a sandbox and everything in it.',
      inputSchema: { sandbox_id: z.string() },
    },
    ({ sandbox_id }) =>
      guard(async () => {
        await (await sandbox(sandbox_id)).destroy();
        return text(`destroyed ${sandbox_id}`);
      }),
  );

  return server;
}
