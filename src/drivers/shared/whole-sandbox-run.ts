/**
 * A one-shot run that is a whole sandbox of its own, made ahead and destroyed after: for drivers
 * without a lighter one-shot path (gvisor, microvm). Killing the program tears its sandbox down;
 * release (once) destroys it. Its program dies with the daemon, as a namespace one-shot sandbox
 * does (its PID 1 ends with the daemon's socket): nobody is left to read its answer, and a job's
 * attempt may run again elsewhere.
 */
import type { DriverProcess, DriverState, ExecSpec, FileToWrite, PreparedRun } from '../driver.js';

export interface WholeSandboxOps<S extends DriverState> {
  running(state: S): boolean;
  teardown(state: S): Promise<void>;
  destroy(state: S): Promise<void>;
  /** Put the files in and start the program (with the run's limits). */
  launch(state: S, files: FileToWrite[], exec: ExecSpec): DriverProcess;
}

export function wholeSandboxRun<S extends DriverState>(id: string, state: S, ops: WholeSandboxOps<S>): PreparedRun {
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await ops.destroy(state);
  };
  return {
    id,
    alive: () => !released && ops.running(state),
    discard: release,
    start: (files, exec) => {
      const proc = ops.launch(state, files, { ...exec, dieWithDaemon: true });
      return {
        ...proc,
        kill: async () => {
          await proc.kill();
          await ops.teardown(state);
        },
        release,
      };
    },
  };
}
