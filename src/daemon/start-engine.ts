/**
 * The daemon's engine, built and brought back: the drivers, the store, the egress guard, then the
 * engine itself, which recovers the sandboxes of an earlier run (logged), reloads live state,
 * starts its reaper and fills its warm pools. Each part that starts registers its stop with
 * `onFailure`, so a failed daemon start leaves nothing behind (serve.ts).
 */
import { Engine } from '../engine/engine.js';
import { HostIds, defaultUidRange } from '../engine/host-ids.js';
import { WasmDriver } from '../drivers/wasm/driver.js';
import { NamespaceDriver } from '../drivers/namespace/driver.js';
import { GvisorDriver } from '../drivers/gvisor/driver.js';
import { MicrovmDriver, defaultKernelDir } from '../drivers/microvm/driver.js';
import { type Driver, type DriverName, opaque } from '../drivers/driver.js';
import { SqliteStore } from '../store/sqlite/store.js';
import { LANGUAGES_DIR } from '../util/paths.js';
import { parseCidr } from '../net/addresses.js';
import { startEgress, stopEgress } from '../net/egress.js';
import type { DaemonLogs } from '../logs/logger.js';
import { type DaemonOptions, pinnedFromEnv } from './daemon-options.js';
import { join } from 'node:path';

export interface StartedEngine {
  store: SqliteStore;
  engine: Engine;
  /** What recovery found: sandboxes running and stopped again, leftovers removed. */
  recovered: Awaited<ReturnType<Engine['recover']>>;
}

export async function startEngine(
  opts: DaemonOptions,
  logs: DaemonLogs,
  onFailure: (stop: () => unknown) => void,
): Promise<StartedEngine> {
  const uidRange = opts.uidRange ?? defaultUidRange();
  const namespace = opaque(
    new NamespaceDriver({
      runtimeDir: join(opts.dataDir, 'runtime'),
      sandboxGroup: new HostIds(uidRange).group,
      cgroupRoot: opts.cgroupRoot ?? 'realm',
    }),
  );
  const drivers = new Map<DriverName, Driver>([
    ['namespace', namespace],
    [
      'gvisor',
      opaque(new GvisorDriver({ runtimeDir: join(opts.dataDir, 'runtime-gvisor'), cgroupRoot: opts.cgroupRoot ?? 'realm' })),
    ],
    [
      'microvm',
      opaque(
        new MicrovmDriver({
          runtimeDir: join(opts.dataDir, 'runtime-microvm'),
          kernelDir: defaultKernelDir(),
          cgroupRoot: opts.cgroupRoot ?? 'realm',
          ...(opts.microvmAllowEmulation !== undefined ? { allowEmulation: opts.microvmAllowEmulation } : {}),
        }),
      ),
    ],
    // WebAssembly runs in runners inside namespace sandboxes.
    ['wasm', opaque(new WasmDriver({ host: namespace, cacheDir: join(opts.dataDir, 'wasm-cache') }))],
  ]);
  const store = new SqliteStore(join(opts.dataDir, 'state.db'), {
    decodeState: (driver, raw) => drivers.get(driver)?.decodeState(raw) ?? raw,
  });
  onFailure(() => store.close());
  const networkAllRefused = await startEgress(opts.cgroupRoot ?? 'realm', (opts.allowPrivate ?? []).map(parseCidr));
  onFailure(() => stopEgress(opts.cgroupRoot ?? 'realm'));
  const engine = new Engine(
    {
      dataDir: opts.dataDir,
      uidRange,
      maxSandboxes: opts.maxSandboxes,
      languageDirs: [],
      warm: opts.warm ?? 2,
      warmMax: opts.warmMax,
      maxRuns: opts.maxRuns ?? 64,
      pinnedHosts: opts.pinnedHosts ?? pinnedFromEnv(),
      allowPrivate: opts.allowPrivate ?? [],
      networkAllRefused,
      proxyUpstreamCa: opts.proxyUpstreamCa ?? process.env.REALM_PROXY_CA_FILE,
      ...(opts.maxLayerBytes ? { maxLayerBytes: opts.maxLayerBytes } : {}),
      ...(opts.defaultDriver ? { defaultDriver: opts.defaultDriver } : {}),
      ...(opts.imageDirs ? { imageDirs: opts.imageDirs } : {}),
      ...((opts.imageCacheDir ?? process.env.REALM_IMAGE_CACHE)
        ? { imageCacheDir: opts.imageCacheDir ?? process.env.REALM_IMAGE_CACHE }
        : {}),
    },
    store,
    drivers,
    [LANGUAGES_DIR, join(opts.dataDir, 'languages')],
  );
  onFailure(() => engine.close());
  logs.follow(engine.events);
  const recovered = await engine.recover();
  await engine.loadLive();
  engine.startReaper();
  await engine.warmDefaults();
  return { store, engine, recovered };
}
