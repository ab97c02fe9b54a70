/**
 * What the Playground ran, as code to paste: the same body to the same route, with the SDK and
 * with curl. The token is never put in: both read it from REALM_TOKEN.
 */
import type { RunBody } from './run';

/** The body as a JavaScript object literal (JSON is one), indented for reading. */
const literal = (body: RunBody): string => JSON.stringify(body, null, 2);

export function sdkSnippet(body: RunBody, origin: string): string {
  return [
    "import { Client, runStream } from '@realm/sdk';",
    '',
    `const client = new Client({ url: ${JSON.stringify(origin)}, token: process.env.REALM_TOKEN });`,
    `for await (const ev of runStream(${literal(body).replace(/\n/g, '\n  ')}, client)) {`,
    "  if (ev.type === 'exit') console.log(ev.result.verdict, ev.result.wallMs, 'ms', ev.result.memoryBytes, 'bytes');",
    '  else process[ev.type].write(ev.data);',
    '}',
    '',
  ].join('\n');
}

/**
 * curl with the body on stdin from a quoted here-document: nothing in the code (quotes, `$`,
 * backslashes) is touched by the shell. The terminator is made longer until the body lacks it.
 */
export function curlSnippet(body: RunBody, origin: string): string {
  const json = literal(body);
  let end = 'JSON';
  while (json.split('\n').includes(end)) end += '_';
  return [
    `curl -sN ${origin}/v1/runs/stream \\`,
    '  -H "Authorization: Bearer $REALM_TOKEN" \\',
    "  -H 'Content-Type: application/json' \\",
    `  --data-binary @- <<'${end}'`,
    json,
    end,
    '',
  ].join('\n');
}
