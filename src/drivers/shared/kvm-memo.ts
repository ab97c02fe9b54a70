/**
 * A failed KVM probe, remembered until the next boot. Where /dev/kvm opens but guests hang (nested
 * virtualisation), a probe waits out its timeout with a CPU spinning; without this every daemon
 * start (every `realm serve`, every test file) would pay it again. Kept in /run (root's tmpfs,
 * gone at reboot) under a key that also names the host kernel and boot, and what the driver
 * probed with (e.g. the runsc version, the QEMU binary and guest kernel); delete the file to probe
 * again. Only failures are kept: a probe that succeeds is quick.
 *
 *   const key = kvmMemoKey(`qemu ${QEMU}`);
 *   const why = knownKvmFailure(FILE, key) ?? (await probe());
 *   if (why) rememberKvmFailure(FILE, key, why);
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';

/** What a remembered verdict holds for: `parts`, this host kernel and this boot. */
export function kvmMemoKey(...parts: string[]): string {
  return [...parts, read('/proc/sys/kernel/osrelease'), read('/proc/sys/kernel/random/boot_id')].join('|');
}

/** The failure remembered under `key`, with where it came from; undefined when none is. */
export function knownKvmFailure(file: string, key: string): string | undefined {
  try {
    const c = JSON.parse(readFileSync(file, 'utf8')) as { key?: string; error?: string };
    return c.key === key && c.error
      ? `${c.error} (remembered from an earlier probe this boot; delete ${file} to probe again)`
      : undefined;
  } catch {
    return undefined;
  }
}

/** Remember a failure (whole file by rename, so a concurrent reader sees the old or the new). */
export function rememberKvmFailure(file: string, key: string, error: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, JSON.stringify({ key, error }), { mode: 0o644 });
    renameSync(tmp, file);
  } catch {
    /* not root or no /run: probed again next time */
  }
}

function read(f: string): string {
  try {
    return readFileSync(f, 'utf8').trim();
  } catch {
    return '';
  }
}
