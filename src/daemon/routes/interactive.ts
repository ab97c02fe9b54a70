/**
 * Interactive exec over WebSocket, with a pseudo-terminal by default. JSON text frames.
 * Client: {type:'start', command, tty?, rows?, cols?, env?, cwd?} first, then {type:'stdin', data},
 * {type:'eof'}, {type:'resize', rows, cols}, {type:'signal', signal}.
 * Server: {type:'stdout'|'stderr', data}, then {type:'exit', exitCode, signal}; or {type:'error', error}.
 * Closing the socket kills the command. A client that does not read holds the command back (its
 * output is not read past about 1 MiB unsent), as a terminal would.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Hono } from 'hono';
import type { UpgradeWebSocket, WSContext } from 'hono/ws';
import { ZodError } from 'zod';
import type { DriverProcess } from '../../drivers/driver.js';
import type { Engine } from '../../engine/engine.js';
import { interactiveMessageSchema, interactiveSchema } from '../../engine/schemas.js';
import { RealmError, errorMessage } from '../../util/errors.js';
import { sandboxParam } from '../access.js';
import { zodMessage } from '../errors.js';
import { SocketSender } from '../ws-send.js';

function errorFrame(e: unknown): string {
  const error =
    e instanceof RealmError
      ? { code: e.code, message: e.message }
      : e instanceof ZodError
        ? { code: 'INVALID_REQUEST', message: zodMessage(e) }
        : e instanceof SyntaxError
          ? { code: 'INVALID_REQUEST', message: `not a JSON message: ${e.message}` }
          : { code: 'INTERNAL', message: errorMessage(e) };
  return JSON.stringify({ type: 'error', error });
}

export function interactiveRoutes(app: Hono, engine: Engine, upgrade: UpgradeWebSocket): void {
  app.get(
    '/v1/sandboxes/:id/exec/ws',
    upgrade((c) => {
      const id = sandboxParam(c);
      let proc: DriverProcess | undefined;
      let socket: SocketSender | undefined;
      let starting = false;
      let exited = false;
      let done = false;
      /** Messages that came while the command was starting, handled once it has. */
      const early: string[] = [];
      const handle = (raw: string, ws: WSContext): void => {
        if (!proc) return;
        try {
          const msg = interactiveMessageSchema.parse(JSON.parse(raw));
          switch (msg.type) {
            case 'stdin':
              proc.stdin?.write(msg.data);
              break;
            case 'eof':
              proc.stdin?.end();
              break;
            case 'resize':
              proc.resize?.(msg.rows, msg.cols);
              break;
            case 'signal':
              proc.signal(msg.signal);
              break;
          }
        } catch (e) {
          ws.send(errorFrame(e));
        }
      };
      const start = async (raw: string, ws: WSContext): Promise<void> => {
        starting = true;
        try {
          const opts = interactiveSchema.parse(JSON.parse(raw));
          proc = await engine.interactive(id, opts);
          const p = proc;
          // A client that does not read holds the command's output (and so the command, as a
          // terminal does), never the daemon's memory.
          const out = (socket = new SocketSender(ws));
          for (const stream of ['stdout', 'stderr'] as const) {
            const dec = new StringDecoder('utf8');
            p[stream].on('data', (d: Buffer) => {
              const data = dec.write(d);
              const wait = data ? out.send(JSON.stringify({ type: stream, data })) : undefined;
              if (wait && !exited) {
                p.stdout.pause();
                p.stderr.pause();
                void wait.then(() => {
                  p.stdout.resume();
                  p.stderr.resume();
                });
              }
            });
          }
          p.stdin?.on('error', () => undefined);
          for (const m of early.splice(0)) handle(m, ws);
          const exit = await p.wait();
          // What is left in the pipes is read at once (bounded by their size).
          exited = true;
          p.stdout.resume();
          p.stderr.resume();
          // Let the last output through before the exit.
          await new Promise((r) => setTimeout(r, 20));
          done = true;
          ws.send(
            JSON.stringify({
              type: 'exit',
              exitCode: exit.exitCode,
              signal: exit.signal,
              oomKilled: exit.oomKilled,
              cpuMs: exit.cpuMs,
              memoryBytes: exit.memoryBytes,
            }),
          );
          ws.close(1000, 'exited');
        } catch (e) {
          ws.send(errorFrame(e));
          ws.close(1008, 'refused');
        }
      };
      return {
        onMessage(event: { data: unknown }, ws) {
          const raw = typeof event.data === 'string' ? event.data : Buffer.from(event.data as ArrayBuffer).toString('utf8');
          if (proc) handle(raw, ws);
          else if (!starting) void start(raw, ws);
          else early.push(raw);
        },
        onClose() {
          socket?.close();
          if (proc && !done) void proc.kill();
        },
      };
    }),
  );
}
