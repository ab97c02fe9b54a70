/** Interactive exec over WebSocket: a terminal (by default) you type into and read from. */
import { type Client, caText } from './client.js';
import { RealmError, errorFromBody } from './errors.js';

export interface InteractiveOptions {
  /** A pseudo-terminal (default true): one output stream, line editing, Ctrl-C as SIGINT. */
  tty?: boolean;
  rows?: number;
  cols?: number;
  env?: Record<string, string>;
  cwd?: string;
}

export interface InteractiveExit {
  exitCode: number | null;
  signal: string | null;
}

type Signal = 'SIGTERM' | 'SIGKILL' | 'SIGINT' | 'SIGHUP' | 'SIGQUIT' | 'SIGUSR1' | 'SIGUSR2' | 'SIGSTOP' | 'SIGCONT';

interface Socket {
  send(data: string): void;
  close(): void;
  on(event: 'message', l: (data: unknown) => void): void;
  on(event: 'close', l: () => void): void;
  on(event: 'error', l: (e: Error) => void): void;
  on(event: 'open', l: () => void): void;
}

export class Interactive {
  /** Resolves when the command ends (or rejects with the API's error). */
  readonly exited: Promise<InteractiveExit>;
  private readonly listeners: ((stream: 'stdout' | 'stderr', data: string) => void)[] = [];
  private readonly early: ['stdout' | 'stderr', string][] = [];

  constructor(private readonly ws: Socket) {
    this.exited = new Promise((resolve, reject) => {
      let settled = false;
      ws.on('message', (raw) => {
        const msg = JSON.parse(String(raw)) as {
          type: string;
          data?: string;
          exitCode?: number | null;
          signal?: string | null;
          error?: { code: string; message: string };
        };
        if (msg.type === 'stdout' || msg.type === 'stderr') {
          // Output before anyone listens (an attach's replay comes at once) waits for the first listener.
          if (this.listeners.length === 0) this.early.push([msg.type, msg.data ?? '']);
          for (const l of this.listeners) l(msg.type, msg.data ?? '');
        } else if (msg.type === 'exit') {
          settled = true;
          resolve({ exitCode: msg.exitCode ?? null, signal: msg.signal ?? null });
        } else if (msg.type === 'error') {
          settled = true;
          reject(errorFromBody(400, msg));
        }
      });
      ws.on('close', () => {
        if (!settled) reject(new RealmError('INTERNAL', 'the connection closed before the command ended'));
      });
    });
    this.exited.catch(() => undefined);
  }

  /** Output as it comes (with a terminal, all of it is stdout). */
  onData(listener: (stream: 'stdout' | 'stderr', data: string) => void): void {
    this.listeners.push(listener);
    for (const [stream, data] of this.early.splice(0)) listener(stream, data);
  }

  write(data: string): void {
    this.ws.send(JSON.stringify({ type: 'stdin', data }));
  }

  /** Close the command's stdin. */
  eof(): void {
    this.ws.send(JSON.stringify({ type: 'eof' }));
  }

  resize(rows: number, cols: number): void {
    this.ws.send(JSON.stringify({ type: 'resize', rows, cols }));
  }

  signal(signal: Signal): void {
    this.ws.send(JSON.stringify({ type: 'signal', signal }));
  }

  /** Leave: an interactive exec is killed; an attached background process keeps running (detach). */
  close(): void {
    this.ws.close();
  }
}

/**
 * Open a WebSocket to the daemon; `wrap` sees it before it opens (so no early message is
 * missed). Resolves when it is open; API errors on the upgrade become typed errors.
 */
export async function openWebSocket<T>(
  client: Client,
  path: string,
  wrap: (ws: import('ws').WebSocket) => T,
): Promise<{ wrapped: T; ws: import('ws').WebSocket }> {
  const { WebSocket } = await import('ws');
  // ws reaches a unix socket through `ws+unix:PATH:REQUEST-PATH` URLs.
  const base = client.socketPath ? `ws+unix:${client.socketPath}:` : client.url.replace(/^http/, 'ws');
  const ws = new WebSocket(`${base}${path}`, {
    ...(client.token ? { headers: { authorization: `Bearer ${client.token}` } } : {}),
    // wss:// verified against the client's CA, as its HTTP requests are.
    ...(client.ca && !client.socketPath ? { ca: caText(client.ca) } : {}),
  });
  const wrapped = wrap(ws);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        let data: unknown;
        try {
          data = JSON.parse(body);
        } catch {
          data = undefined;
        }
        reject(errorFromBody(res.statusCode ?? 500, data));
      });
    });
    ws.once('error', reject);
  });
  return { wrapped, ws };
}

async function openSession(client: Client, path: string): Promise<{ session: Interactive; socket: Socket }> {
  const { wrapped, ws } = await openWebSocket(client, path, (w) => new Interactive(w as unknown as Socket));
  return { session: wrapped, socket: ws as unknown as Socket };
}

/** Open the WebSocket and start the command; resolves once the daemon has it. */
export async function attach(
  client: Client,
  sandboxId: string,
  command: string | string[],
  opts: InteractiveOptions = {},
): Promise<Interactive> {
  const { session, socket } = await openSession(client, `/v1/sandboxes/${encodeURIComponent(sandboxId)}/exec/ws`);
  socket.send(JSON.stringify({ type: 'start', command, ...opts }));
  return session;
}

/** Attach to a running background process: what it printed so far, then live. Closing detaches. */
export async function attachProcess(client: Client, sandboxId: string, processId: string): Promise<Interactive> {
  return (
    await openSession(client, `/v1/sandboxes/${encodeURIComponent(sandboxId)}/processes/${encodeURIComponent(processId)}/attach`)
  ).session;
}
