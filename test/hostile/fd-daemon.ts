/**
 * A test daemon in a child process, for cases that need the daemon's own process set up a certain
 * way (here: holding an inherited descriptor). Prints {url, token, dataDir, cgroupRoot} as one JSON line;
 * destroys its sandboxes and exits when stdin closes.
 */
import { startTestDaemon } from '../helpers/daemon.js';

const t = await startTestDaemon();
process.stdout.write(`${JSON.stringify({ url: t.url, token: t.token, dataDir: t.dataDir, cgroupRoot: t.cgroupRoot })}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  void t.close().finally(() => process.exit(0));
});
