/** A failed KVM probe is remembered under its key only (drivers/shared/kvm-memo.ts). */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { knownKvmFailure, kvmMemoKey, rememberKvmFailure } from '../../src/drivers/shared/kvm-memo.js';

void it('remembers a failure for the same key (this boot, this kernel, the same tools) and no other', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kvm-memo-'));
  try {
    const file = join(dir, 'kvm.json');
    const key = kvmMemoKey('qemu 8.1', 'kernel 6.1');
    assert.match(key, /^qemu 8\.1\|kernel 6\.1\|[^|]+\|[0-9a-f-]{36}$/, 'the host kernel and the boot id are part of the key');
    assert.equal(knownKvmFailure(file, key), undefined, 'nothing remembered yet');
    rememberKvmFailure(file, key, 'a KVM guest did not boot within 8 s (killed)');
    assert.match(
      knownKvmFailure(file, key) ?? '',
      /^a KVM guest did not boot within 8 s \(killed\) \(remembered from an earlier probe this boot; delete .*kvm\.json to probe again\)$/,
    );
    assert.equal(knownKvmFailure(file, kvmMemoKey('qemu 8.2', 'kernel 6.1')), undefined, 'another QEMU probes again');
    rememberKvmFailure(join(dir, 'missing', 'kvm.json'), key, 'x'); // cannot write: no error, nothing kept
    assert.equal(knownKvmFailure(join(dir, 'missing', 'kvm.json'), key), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
