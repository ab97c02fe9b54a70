/**
 * Requests a driver cannot serve, refused before anything is made: each refusal names the
 * capability the driver lacks (see `DriverCapabilities`) and says what to change.
 */
import type { DriverCapabilities, DriverName, NetworkCapability } from '../drivers/driver.js';
import { RealmError } from '../util/errors.js';

/** Anything `refuseUnservable` checks; absent parts are not asked for. */
export interface DriverRequest {
  network?: NetworkCapability;
  volumes?: number;
  tty?: boolean;
  interactive?: boolean;
  stopStart?: boolean;
  /** An exec's limits against its sandbox's (a limit tighter than the sandbox's needs the per-exec capability). */
  exec?: { memoryBytes?: number | undefined; cpus?: number | undefined; pids?: number | undefined };
  sandbox?: { memoryBytes: number; cpus: number };
}

const refuse = (driver: DriverName, capability: string, lacks: string, what: string): RealmError =>
  new RealmError('DRIVER_UNAVAILABLE', `the ${driver} driver has ${lacks} (capability ${capability}): ${what}`);

/** Throws DRIVER_UNAVAILABLE, naming the capability, when `caps` do not cover `req`. */
export function refuseUnservable(driver: DriverName, caps: DriverCapabilities, req: DriverRequest): void {
  if (req.network && !caps.networkModes.includes(req.network)) {
    const hint = req.network === 'all' ? ' (it needs slirp4netns: apt-get install slirp4netns)' : '';
    throw refuse(
      driver,
      `networkModes:${req.network}`,
      `no network "${req.network}" here`,
      `network "${req.network}" is not available here${hint}; use one of ${caps.networkModes.join(', ')}`,
    );
  }
  if (req.volumes !== undefined && caps.maxVolumes !== null && req.volumes > caps.maxVolumes) {
    throw refuse(
      driver,
      'maxVolumes',
      `a limit of ${caps.maxVolumes} volumes`,
      `it mounts at most ${caps.maxVolumes} volumes per sandbox, ${req.volumes} were asked for; use fewer`,
    );
  }
  if (req.tty && !caps.tty) throw refuse(driver, 'tty', 'no terminals', 'it runs no command on a terminal; run it without a tty');
  if (req.interactive && !caps.interactive)
    throw refuse(
      driver,
      'interactive',
      'no interactive execs',
      'it streams no input to a running command; give stdin with the exec',
    );
  if (req.stopStart && !caps.stopStart)
    throw refuse(
      driver,
      'stopStart',
      'no stop and start',
      'its sandboxes cannot be stopped and started again; destroy and create one',
    );
  const x = req.exec;
  const sb = req.sandbox;
  if (x && sb) {
    if (x.memoryBytes !== undefined && x.memoryBytes < sb.memoryBytes && !caps.perExecMemoryLimit) {
      throw refuse(
        driver,
        'perExecMemoryLimit',
        'no per-exec memory limit',
        `this sandbox's memory limit is ${mib(sb.memoryBytes)}, the exec asked for ${mib(x.memoryBytes)}; ` +
          "create the sandbox with that memory limit (--memory), leave out the exec's, or use another driver",
      );
    }
    if (x.cpus !== undefined && x.cpus < sb.cpus && !caps.perExecCpuLimit) {
      throw refuse(
        driver,
        'perExecCpuLimit',
        'no per-exec cpu limit',
        `this sandbox has ${sb.cpus} cpus, the exec asked for ${x.cpus}; create the sandbox with that cpu limit (--cpus), leave out the exec's, or use another driver`,
      );
    }
  }
  if (x?.pids !== undefined && !caps.perExecPidsLimit)
    throw refuse(
      driver,
      'perExecPidsLimit',
      'no per-exec process limit',
      "an exec has no process limit of its own here; leave out the exec's",
    );
}

function mib(bytes: number): string {
  return `${Math.round(bytes / 1024 ** 2)}m`;
}
