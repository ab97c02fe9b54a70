/**
 * A test daemon with its gateway, in a child process (so a test can watch the daemon's own memory).
 * Prints {url, token, gateway, dataDir, cgroupRoot} as one JSON line; removes its services and
 * sandboxes and exits when stdin closes.
 */
import { startTestDaemon } from '../../helpers/daemon.js';

const t = await startTestDaemon({ warm: 0, gateway: '127.0.0.1:0' });
process.stdout.write(
  `${JSON.stringify({ url: t.url, token: t.token, gateway: t.daemon.gatewayUrl, dataDir: t.dataDir, cgroupRoot: t.cgroupRoot })}\n`,
);
process.stdin.resume();
process.stdin.on('end', () => {
  void t.close().finally(() => process.exit(0));
});
