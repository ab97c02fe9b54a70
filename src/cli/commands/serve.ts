import type { Command } from 'commander';
import { DEFAULT_LISTEN, defaultDataDir, defaultSandboxUid } from '../../config.js';
import { startDaemon } from '../../daemon/serve.js';
import { action } from '../action.js';
import { parseSize } from '../../util/units.js';
import { RealmError } from '../../util/errors.js';

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the realm daemon (HTTP API) in the foreground')
    .option('--listen <host:port>', 'address to listen on (loopback only)', process.env.REALM_LISTEN ?? DEFAULT_LISTEN)
    .option('--data-dir <dir>', 'state directory (REALM_DATA_DIR)', defaultDataDir())
    .option('--max-sandboxes <n>', 'most live sandboxes at once', '1000')
    .option('--max-runs <n>', 'most one-shot runs at once (more get 429)', '64')
    .option('--auth', 'want a bearer token on every route but /v1/health (needed beyond loopback)', process.env.REALM_AUTH === '1')
    .option('--warm <n>', 'sandboxes kept ready per shape for creates and runs (0: off)', '2')
    .option('--warm-max <n>', 'most sandboxes a busy shape keeps ready; demand raises a shape from --warm up to this (default 4 × --warm)')
    .option('--image-dir <dir>', 'a host directory whose subdirectories may be sandbox images (repeatable; never / or one holding the data dir; REALM_IMAGE_DIRS, colon-separated)', (v: string, all: string[]) => [...all, v], (process.env.REALM_IMAGE_DIRS ?? '').split(':').filter(Boolean))
    .option('--max-layer-size <size>', 'largest image layer accepted, compressed or unpacked (REALM_MAX_LAYER_SIZE)', process.env.REALM_MAX_LAYER_SIZE ?? '8g')
    .action(action(async (f: { listen: string; dataDir: string; maxSandboxes: string; maxRuns: string; warm: string; warmMax?: string; auth: boolean; maxLayerSize: string; imageDir: string[] }) => {
      const count = (flag: string, v: string): number => {
        if (!/^\d+$/.test(v)) throw new RealmError('INVALID_REQUEST', `${flag} ${v}: write a whole number such as 2 (0 turns warm pools off)`);
        return Number(v);
      };
      const maxLayerBytes = parseSize(f.maxLayerSize);
      if (!maxLayerBytes) throw new RealmError('INVALID_REQUEST', `--max-layer-size ${f.maxLayerSize}: write a size such as 2g or 512m`);
      const d = await startDaemon({
        listen: f.listen,
        dataDir: f.dataDir,
        sandboxUid: defaultSandboxUid(),
        maxSandboxes: Number(f.maxSandboxes) || 1000,
        maxRuns: Number(f.maxRuns) || 64,
        warm: count('--warm', f.warm),
        ...(f.warmMax !== undefined ? { warmMax: count('--warm-max', f.warmMax) } : {}),
        cgroupRoot: process.env.REALM_CGROUP_ROOT ?? 'realm',
        auth: f.auth,
        maxLayerBytes,
        imageDirs: f.imageDir,
      });
      process.stderr.write(`realm: daemon listening on ${d.url} (data in ${f.dataDir})\n`);
      const stop = (): void => {
        void d.close().then(() => process.exit(0));
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
    }));
}
