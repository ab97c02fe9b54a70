/** `--node ID` and `--tag T` (repeatable): where in a cluster a run or sandbox may go. */
import type { Placement } from '@realm/sdk';

export function placementOf(f: { node?: string; tag?: string[] }): { placement?: Placement } {
  const tags = f.tag ?? [];
  if (f.node === undefined && !tags.length) return {};
  return { placement: { ...(f.node !== undefined ? { node: f.node } : {}), tags } };
}
