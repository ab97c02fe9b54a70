/** `realm doctor`'s lines for what a driver can be asked for (its declared capabilities). */
import type { DriverCapabilities } from '@realm/sdk';

/** One line per capability, indented as doctor's details are; none for a daemon that sends none. */
export function capabilityLines(caps: DriverCapabilities | undefined): string[] {
  if (!caps) return [];
  const yes = (b: boolean): string => (b ? 'yes' : 'no');
  const rows: [string, string][] = [
    ['network modes', caps.networkModes.join(', ')],
    ['max volumes', caps.maxVolumes === null ? 'no limit' : String(caps.maxVolumes)],
    ['per-exec memory', yes(caps.perExecMemoryLimit)],
    ['per-exec cpus', yes(caps.perExecCpuLimit)],
    ['per-exec pids', yes(caps.perExecPidsLimit)],
    ['terminals (tty)', yes(caps.tty)],
    ['interactive', yes(caps.interactive)],
    ['stop/start', yes(caps.stopStart)],
    ['native programs', yes(caps.nativePrograms)],
  ];
  return ['  can:', ...rows.map(([k, v]) => `    ${k.padEnd(18)} ${v}`)];
}
