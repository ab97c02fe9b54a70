/** `--node ID`, `--tag T` (repeatable) and `--platform OS/ARCH`: where in a cluster a run or sandbox may go. */
import type { Placement } from '@realm/sdk';

export function placementOf(f: { node?: string; tag?: string[]; platform?: string }): { placement?: Placement } {
  const tags = f.tag ?? [];
  if (f.node === undefined && !tags.length && f.platform === undefined) return {};
  return {
    placement: {
      ...(f.node !== undefined ? { node: f.node } : {}),
      tags,
      ...(f.platform !== undefined ? { platform: f.platform } : {}),
    },
  };
}
