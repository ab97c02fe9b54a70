/**
 * The relay of one replica (run by replica-proxy.ts under `nsenter --net=/proc/PID/ns/net`, as an
 * unprivileged uid): it listens on a Unix socket — a path in the host's filesystem, reachable by
 * the gateway — and joins each connection to 127.0.0.1:PORT in the sandbox's own network
 * namespace, where the replica listens. A connection to `SOCKET.probe` answers `ok` or `fail`
 * after one TCP connect to the port (the TCP health check). Bytes pass untouched both ways, so
 * streaming bodies and WebSocket upgrades work as they would on the replica's port itself.
 *
 * Usage: node relay.js SOCKET PORT
 */
import { connect, createServer, type Socket } from 'node:net';
import { rmSync } from 'node:fs';

const [socketPath, portText] = process.argv.slice(2);
const port = Number(portText);
if (!socketPath || !Number.isInteger(port) || port < 1 || port > 65535) {
  process.stderr.write('usage: relay SOCKET PORT\n');
  process.exit(2);
}

function join(client: Socket): void {
  const upstream = connect({ host: '127.0.0.1', port });
  upstream.setNoDelay(true);
  client.pipe(upstream);
  upstream.pipe(client);
  const done = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.once('error', done).once('close', done);
  upstream.once('error', done).once('close', done);
}

function probe(client: Socket): void {
  const upstream = connect({ host: '127.0.0.1', port });
  const answer = (word: string): void => {
    upstream.destroy();
    client.end(word);
  };
  upstream.once('connect', () => answer('ok'));
  upstream.once('error', () => answer('fail'));
  client.once('error', () => upstream.destroy());
}

for (const [path, handler] of [
  [socketPath, join],
  [`${socketPath}.probe`, probe],
] as const) {
  rmSync(path, { force: true });
  createServer(handler).listen(path);
}
// The daemon ends the relay by SIGTERM (or its stdin closing: the daemon went away).
process.stdin.resume();
process.stdin.once('end', () => process.exit(0));
process.once('SIGTERM', () => process.exit(0));
