/** Response shape of `GET /v1/logs` (see responses.ts for the others). */
import { z } from 'zod';

export const logLineResponse = z
  .object({
    level: z.enum(['debug', 'info', 'warn', 'error']),
    time: z.string().describe('ISO 8601'),
    msg: z.string(),
    requestId: z.string().optional().describe('the API request being served when the line was made'),
    sandboxId: z.string().optional(),
    runId: z.string().optional(),
    jobId: z.string().optional(),
    service: z.string().optional().describe('an app or process service'),
    node: z.string().optional(),
  })
  .passthrough()
  .describe("One line of the daemon's log (pino's JSON): other fields as the line has them");

export const logLinesResponse = z.object({ lines: z.array(logLineResponse).describe('oldest first') });
