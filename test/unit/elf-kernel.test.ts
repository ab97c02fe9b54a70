/** The microvm driver's uncompressed guest kernel (src/drivers/microvm/elf-kernel.ts): LZ4 legacy frames, the PVH note, the fallback. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bzImagePayload, elfKernel, hasPvhEntry, lz4LegacyDecode } from '../../src/drivers/microvm/elf-kernel.js';
import { cachedKernel } from '../../src/drivers/microvm/assets.js';
import { defaultKernelDir } from '../../src/drivers/microvm/driver.js';

const lz4 = spawnSync('lz4', ['--version']).status === 0;

/** An x86-64 ELF executable with one PT_NOTE segment holding one note of `type` named `name`. */
function elfWithNote(name: string, type: number): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const pad = (n: number): number => ((n + 3) >> 2) << 2;
  const note = Buffer.alloc(12 + pad(nameBytes.length) + 8);
  note.writeUInt32LE(nameBytes.length, 0);
  note.writeUInt32LE(8, 4);
  note.writeUInt32LE(type, 8);
  nameBytes.copy(note, 12);
  const elf = Buffer.alloc(64 + 56 + note.length);
  elf.writeUInt32BE(0x7f454c46, 0);
  elf[4] = 2; // 64-bit
  elf[5] = 1; // little-endian
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(62, 18); // x86-64
  elf.writeBigUInt64LE(64n, 32); // e_phoff
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(1, 56);
  elf.writeUInt32LE(4, 64); // PT_NOTE
  elf.writeBigUInt64LE(120n, 64 + 8); // p_offset
  elf.writeBigUInt64LE(BigInt(note.length), 64 + 32); // p_filesz
  note.copy(elf, 120);
  return elf;
}

void describe('the guest kernel as an ELF', () => {
  void it(
    'decodes LZ4 legacy frames as lz4 -l writes them: several blocks, overlapping matches, literals only',
    { skip: lz4 ? false : 'the lz4 tool is not installed' },
    () => {
      // Text that repeats (long and overlapping matches), noise (literals), and more than one 8 MiB block.
      const parts: Buffer[] = [];
      let seed = 7;
      for (let i = 0; parts.reduce((n, p) => n + p.length, 0) < 9 << 20; i++) {
        if (i % 3 === 0) parts.push(Buffer.alloc(1000 + (i % 700), i % 251));
        else if (i % 3 === 1) parts.push(Buffer.from(`line ${i} of the kernel; `.repeat(1 + (i % 40))));
        else parts.push(Buffer.from(Array.from({ length: 300 }, () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24)));
      }
      const data = Buffer.concat(parts);
      const packed = spawnSync('lz4', ['-l', '-9', '-c'], { input: data, maxBuffer: 64 << 20 });
      assert.equal(packed.status, 0, String(packed.stderr));
      // The kernel's build appends the decompressed size: it ends the frame.
      const size = Buffer.alloc(4);
      size.writeUInt32LE(data.length);
      assert.ok(lz4LegacyDecode(Buffer.concat([packed.stdout, size])).equals(data));
      assert.ok(lz4LegacyDecode(packed.stdout).equals(data));
      assert.throws(() => lz4LegacyDecode(Buffer.from('not lz4 at all')), /not an LZ4 legacy frame/);
    },
  );

  void it('takes only an x86-64 ELF with a PVH entry note (Xen, type 18)', () => {
    assert.equal(hasPvhEntry(elfWithNote('Xen', 18)), true);
    assert.equal(hasPvhEntry(elfWithNote('Xen', 17)), false);
    assert.equal(hasPvhEntry(elfWithNote('GNU', 18)), false);
    const arm = elfWithNote('Xen', 18);
    arm.writeUInt16LE(183, 18);
    assert.equal(hasPvhEntry(arm), false);
    assert.equal(hasPvhEntry(Buffer.from('MZ not an ELF')), false);
  });

  void it('boots the bzImage where no ELF can be had from it, and writes nothing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'realm-elf-kernel-'));
    try {
      const vmlinuz = join(dir, 'vmlinuz');
      writeFileSync(vmlinuz, Buffer.alloc(4096, 1));
      assert.equal(bzImagePayload(readFileSync(vmlinuz)), undefined);
      assert.equal(elfKernel(vmlinuz), vmlinuz);
      assert.equal(existsSync(join(dir, 'vmlinux')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const kernel = cachedKernel(defaultKernelDir());
  void it(
    "the cached Debian kernel's payload decompresses to a PVH ELF of the size its build recorded",
    { skip: kernel ? false : 'no guest kernel is cached here' },
    () => {
      const img = readFileSync(kernel?.vmlinuz ?? '');
      const payload = bzImagePayload(img);
      assert.ok(payload, 'the bzImage names its payload');
      const dir = mkdtempSync(join(tmpdir(), 'realm-elf-kernel-'));
      try {
        writeFileSync(join(dir, 'vmlinuz'), img);
        const out = elfKernel(join(dir, 'vmlinuz'));
        assert.equal(out, join(dir, 'vmlinux'), 'the kernel boots as an ELF');
        const elf = readFileSync(out);
        assert.equal(elf.length, payload.readUInt32LE(payload.length - 4));
        assert.ok(hasPvhEntry(elf));
        assert.equal(elfKernel(join(dir, 'vmlinuz')), out, 'made once, then found');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
