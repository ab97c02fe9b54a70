/**
 * A TCP relay on 127.0.0.1 in front of one loopback port, that a test can cut: `cut()` destroys
 * every connection through it and refuses new ones (accepted and closed at once) until `mend()`.
 * A node whose --cluster points at it is cut off from etcd while etcd and the other nodes run on.
 */
import { type Server, type Socket, createConnection, createServer } from 'node:net';

export interface TcpRelay {
  port: number;
  cut(): void;
  mend(): void;
  close(): Promise<void>;
}

export async function startRelay(target: number): Promise<TcpRelay> {
  const open = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: '127.0.0.1', port: target });
    for (const s of [client, upstream]) {
      open.add(s);
      s.on('close', () => open.delete(s));
      s.on('error', () => undefined);
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const addr = server.address();
  if (addr === null || typeof addr === 'string') throw new Error('the relay has no port');
  const drop = (): void => {
    for (const s of open) s.destroy();
    open.clear();
  };
  return {
    port: addr.port,
    cut() {
      cut = true;
      drop();
    },
    mend() {
      cut = false;
    },
    async close() {
      drop();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
