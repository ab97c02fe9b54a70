/** Whether a sandbox's long-lived host process (runsc's sandbox, QEMU) still runs. */
import { readFileSync } from 'node:fs';
import { isSameProcess } from '../../util/proc.js';

/** True while the process `pid` started at `startTime` runs (a zombie nobody reaped yet is dead). */
export function running(state: { pid?: number | undefined; startTime?: number | undefined }): boolean {
  if (!state.pid || !state.startTime || !isSameProcess(state.pid, state.startTime)) return false;
  try {
    const stat = readFileSync(`/proc/${state.pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}
