/** Background processes: start detached, list, follow output (SSE, replayed then live), stdin, signal, kill. */
import type { Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { Engine } from '../../engine/engine.js';
import { interactiveMessageSchema, processInputSchema, signalSchema, startProcessSchema } from '../../engine/schemas.js';
import { RealmError } from '../../util/errors.js';
import { sandboxParam } from '../access.js';
import type { UpgradeWebSocket } from 'hono/ws';
import { jsonBody } from '../body.js';
import { SocketSender } from '../ws-send.js';

export function processRoutes(app: Hono, engine: Engine, upgrade: UpgradeWebSocket): void {
  const base = '/v1/sandboxes/:id/processes';
  const sandboxId = async (idOrName: string): Promise<string> => (await engine.getSandbox(idOrName)).id;

  app.post(base, async (c) =>
    c.json(await engine.startProcess(sandboxParam(c), startProcessSchema.parse(await jsonBody(c))), 201),
  );
  app.get(base, async (c) => c.json({ processes: engine.processes.list(await sandboxId(sandboxParam(c))) }));
  app.get(`${base}/:pid`, async (c) => c.json(engine.processes.info(await sandboxId(sandboxParam(c)), c.req.param('pid'))));

  app.get(`${base}/:pid/output`, async (c) => {
    const sb = await sandboxId(sandboxParam(c));
    const pid = c.req.param('pid');
    engine.processes.info(sb, pid); // PROCESS_NOT_FOUND before the stream starts
    return streamSSE(c, async (stream) => {
      const live = c.req.query('follow') !== '0';
      // Each event is written only after the client took the last (writeSSE resolves once the
      // socket has room): a client that does not read holds only its place in the kept output.
      await new Promise<void>((resolve) => {
        const stop = engine.processes.follow(
          sb,
          pid,
          {
            chunk: (chunk) =>
              stream.writeSSE({ event: chunk.stream, data: JSON.stringify({ data: chunk.text, offset: chunk.offset }) }),
            end: (exit) => {
              // Without following, a running process's replay ends with `end`.
              const last = exit
                ? stream.writeSSE({ event: 'exit', data: JSON.stringify(exit) })
                : stream.writeSSE({ event: 'end', data: JSON.stringify({ status: 'running' }) });
              void last.finally(resolve);
            },
          },
          live,
        );
        stream.onAbort(() => {
          stop();
          resolve();
        });
      });
    });
  });

  // Attach a terminal to a background process: what it printed so far, then live; stdin,
  // resize and signals go to it. Closing the socket detaches: the process keeps running.
  app.get(
    `${base}/:pid/attach`,
    upgrade((c) => {
      let stop: (() => void) | undefined;
      let socket: SocketSender | undefined;
      let sb = '';
      const pid = c.req.param('pid') ?? '';
      return {
        onOpen(_e, ws) {
          void sandboxId(sandboxParam(c))
            .then((id) => {
              sb = id;
              const out = (socket = new SocketSender(ws));
              stop = engine.processes.follow(sb, pid, {
                chunk: (chunk) => out.send(JSON.stringify({ type: chunk.stream, data: chunk.text })),
                end: (exit) => {
                  ws.send(JSON.stringify({ type: 'exit', exitCode: exit?.exitCode ?? null, signal: exit?.signal ?? null }));
                  ws.close(1000, 'exited');
                },
              });
            })
            .catch((e: unknown) => {
              ws.send(
                JSON.stringify({
                  type: 'error',
                  error:
                    e instanceof RealmError ? { code: e.code, message: e.message } : { code: 'INTERNAL', message: String(e) },
                }),
              );
              ws.close(1008, 'refused');
            });
        },
        onMessage(event: { data: unknown }, ws) {
          try {
            const msg = interactiveMessageSchema.parse(
              JSON.parse(typeof event.data === 'string' ? event.data : Buffer.from(event.data as ArrayBuffer).toString('utf8')),
            );
            switch (msg.type) {
              case 'stdin':
                engine.processes.write(sb, pid, msg.data);
                break;
              case 'eof':
                engine.processes.write(sb, pid, '', true);
                break;
              case 'resize':
                engine.processes.resize(sb, pid, msg.rows, msg.cols);
                break;
              case 'signal':
                engine.processes.signal(sb, pid, msg.signal);
                break;
            }
          } catch (e) {
            ws.send(
              JSON.stringify({
                type: 'error',
                error:
                  e instanceof RealmError
                    ? { code: e.code, message: e.message }
                    : { code: 'INVALID_REQUEST', message: String(e) },
              }),
            );
          }
        },
        onClose() {
          stop?.();
          socket?.close();
        },
      };
    }),
  );

  app.post(`${base}/:pid/stdin`, async (c) => {
    const b = processInputSchema.parse(await jsonBody(c));
    engine.processes.write(await sandboxId(sandboxParam(c)), c.req.param('pid'), b.data, b.close);
    return c.body(null, 204);
  });

  app.post(`${base}/:pid/signal`, async (c) => {
    const b = signalSchema.parse(await jsonBody(c));
    engine.processes.signal(await sandboxId(sandboxParam(c)), c.req.param('pid'), b.signal);
    return c.body(null, 204);
  });

  app.delete(`${base}/:pid`, async (c) => {
    await engine.processes.kill(await sandboxId(sandboxParam(c)), c.req.param('pid'));
    return c.body(null, 204);
  });
}
