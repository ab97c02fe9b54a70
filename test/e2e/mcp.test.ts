/** The MCP server, driven by the official MCP SDK's own client: over stdio (realm mcp) and over HTTP (/mcp). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Client as McpClient } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { REALM_BIN } from '../helpers/cli.js';
import { daemonHooks, leftovers, namespaceSkipReason, type TestDaemon } from '../helpers/daemon.js';

const skip = await namespaceSkipReason();
if (skip) console.log(`# skipping MCP tests: ${skip}`);

const TOOLS = ['create_sandbox', 'destroy_sandbox', 'exec', 'list_files', 'read_file', 'run_code', 'write_file'];

type ToolResult = { content: { type: string; text: string }[]; isError?: boolean };

async function call(c: McpClient, name: string, args: Record<string, unknown>): Promise<ToolResult> {
  return (await c.callTool({ name, arguments: args })) as ToolResult;
}

/** Everything an agent does in one session, with the answers checked. */
async function agentSession(c: McpClient): Promise<void> {
  assert.deepEqual((await c.listTools()).tools.map((x) => x.name).sort(), TOOLS);
  const ran = await call(c, 'run_code', { language: 'python', code: 'print(6*7)' });
  assert.equal((JSON.parse(ran.content[0]?.text ?? '{}') as { stdout: string }).stdout, '42\n');
  // A timeout as a number of milliseconds, as many agents send it, or as text.
  for (const timeout of [300, '300ms']) {
    const slow = await call(c, 'run_code', { language: 'python', code: 'while True: pass', timeout });
    assert.ok(!slow.isError, JSON.stringify(slow));
    assert.equal((JSON.parse(slow.content[0]?.text ?? '{}') as { verdict: string }).verdict, 'timeout');
  }
  const created = JSON.parse((await call(c, 'create_sandbox', { memory: '256m' })).content[0]?.text ?? '{}') as {
    sandbox_id: string;
  };
  const id = created.sandbox_id;
  assert.match(id, /^sb-/);
  assert.ok(!(await call(c, 'write_file', { sandbox_id: id, path: 'src/hello.py', content: 'print("hello from mcp")' })).isError);
  assert.equal(
    (await call(c, 'read_file', { sandbox_id: id, path: '/home/user/src/hello.py' })).content[0]?.text,
    'print("hello from mcp")',
  );
  assert.match((await call(c, 'list_files', { sandbox_id: id })).content[0]?.text ?? '', /"name": "src"/);
  const ex = JSON.parse(
    (await call(c, 'exec', { sandbox_id: id, command: 'python3 src/hello.py' })).content[0]?.text ?? '{}',
  ) as { stdout: string; exitCode: number };
  assert.equal(ex.stdout, 'hello from mcp\n');
  assert.ok(!(await call(c, 'destroy_sandbox', { sandbox_id: id })).isError);
  const gone = await call(c, 'exec', { sandbox_id: id, command: 'true' });
  assert.equal(gone.isError, true);
  assert.match(gone.content[0]?.text ?? '', /SANDBOX_NOT_FOUND/);
}

void describe('MCP server', { skip }, () => {
  let t: TestDaemon;
  daemonHooks((d) => (t = d));

  const session = async (transport: Transport): Promise<void> => {
    const c = new McpClient({ name: 'realm-test', version: '1.0.0' });
    await c.connect(transport);
    try {
      await agentSession(c);
    } finally {
      await c.close();
    }
    assert.deepEqual(await leftovers(t), []);
  };

  void it('over stdio: realm mcp', async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
    await session(
      new StdioClientTransport({
        command: REALM_BIN,
        args: ['mcp'],
        env: { ...env, REALM_URL: t.url, REALM_TOKEN: t.token },
        stderr: 'inherit',
      }),
    );
  });

  void it('over HTTP: the daemon’s /mcp', async () => {
    await session(
      new StreamableHTTPClientTransport(new URL(`${t.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${t.token}` } },
      }),
    );
  });
});
