/**
 * A one-shot run with its output as it comes: POST /v1/runs/stream answers Server-Sent Events
 * (`stdout`/`stderr` {data}, then `exit` with the result, or `error`). Aborting the signal closes
 * the connection, which kills the program.
 */
import { ApiError } from '../../api';
import { postSse } from '../../components/postSse';

export type { LanguageInfo, RunResult } from '@realm/sdk';
import type { RunResult } from '@realm/sdk';

/** The body of POST /v1/runs (and /v1/runs/stream), as the Playground sends it. */
export interface RunBody {
  language: string;
  code?: string;
  files?: { name?: string; content: string; encoding?: 'utf8' | 'base64' }[];
  stdin?: string;
  args?: string[];
  timeout?: string;
  memory?: string;
}

export async function runStream(
  body: RunBody,
  onOutput: (stream: 'stdout' | 'stderr', data: string) => void,
  signal: AbortSignal,
): Promise<RunResult> {
  let result: RunResult | undefined;
  let failure: ApiError | undefined;
  await postSse(
    '/v1/runs/stream',
    body,
    (m) => {
      const data = JSON.parse(m.data) as { data?: string; error?: { code: string; message: string } } & RunResult;
      if (m.event === 'stdout' || m.event === 'stderr') onOutput(m.event, data.data ?? '');
      else if (m.event === 'exit') result = data;
      else if (m.event === 'error')
        failure = new ApiError(500, data.error?.code ?? 'INTERNAL', data.error?.message ?? 'the run failed');
      return result !== undefined || failure !== undefined;
    },
    signal,
  );
  if (failure) throw failure;
  if (!result) throw new ApiError(500, 'INTERNAL', 'the stream ended before the program did');
  return result;
}
