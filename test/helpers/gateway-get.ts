/** GETs through a node's gateway, for cluster tests. */
import { request as httpRequest } from 'node:http';

/** GET `path` through the gateway on 127.0.0.1:`port` (a loopback client naming a loopback Host). */
export function gatewayGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}
