/**
 * The guest kernel as an uncompressed ELF (vmlinux) that QEMU starts at its PVH entry point,
 * taken out of the bzImage once and cached beside it. A bzImage first runs its real-mode setup
 * and then decompresses itself inside the guest: under emulation that is seconds of every boot
 * (the Debian cloud kernel's payload is ~14 MB of LZ4), under KVM still tens of milliseconds. The
 * ELF is the same kernel, byte for byte what the bzImage would have decompressed.
 *
 * Only an ELF with a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY, the kernel's CONFIG_PVH) is used;
 * a payload in a format not read here, or a kernel without the note, boots as the bzImage.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** XEN_ELFNOTE_PHYS32_ENTRY: the 32-bit entry point a PVH loader (QEMU's -kernel) starts. */
const PHYS32_ENTRY = 18;

/** The bzImage's compressed payload (boot protocol 2.08+: payload_offset, payload_length), or undefined. */
export function bzImagePayload(img: Buffer): Buffer | undefined {
  if (img.length < 0x250 || img.toString('latin1', 0x202, 0x206) !== 'HdrS' || img.readUInt16LE(0x206) < 0x208) return undefined;
  const setupSects = img[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + img.readUInt32LE(0x248);
  const end = start + img.readUInt32LE(0x24c);
  return end <= img.length ? img.subarray(start, end) : undefined;
}

/**
 * LZ4's legacy frame, as the kernel's `lz4 -l` makes it: magic, then blocks (u32 size, data) of
 * at most 8 MiB decompressed each, up to the end or a size that is the kernel's appended length.
 */
export function lz4LegacyDecode(src: Buffer): Buffer {
  if (src.readUInt32LE(0) !== 0x184c2102) throw new Error('not an LZ4 legacy frame');
  const parts: Buffer[] = [];
  const block = Buffer.alloc(8 << 20);
  let p = 4;
  while (p + 4 <= src.length) {
    const size = src.readUInt32LE(p);
    p += 4;
    // What follows the last block: the 4-byte uncompressed size, or the next block's magic.
    if (size === 0x184c2102 || p + size > src.length) break;
    const end = p + size;
    let o = 0;
    while (p < end) {
      const token = src[p++] ?? 0;
      let lit = token >> 4;
      if (lit === 15) for (let b = 255; b === 255 && p < end; lit += b) b = src[p++] ?? 0;
      src.copy(block, o, p, p + lit);
      o += lit;
      p += lit;
      if (p >= end) break; // the last sequence has literals only
      const offset = (src[p] ?? 0) | ((src[p + 1] ?? 0) << 8);
      p += 2;
      if (offset === 0 || offset > o) throw new Error('bad LZ4 match offset');
      let len = (token & 15) + 4;
      if ((token & 15) === 15) for (let b = 255; b === 255; len += b) b = src[p++] ?? 0;
      // Byte by byte where the match overlaps what it writes (an offset shorter than its length).
      if (offset >= len) block.copy(block, o, o - offset, o - offset + len);
      else for (let i = 0; i < len; i++) block[o + i] = block[o - offset + i] ?? 0;
      o += len;
    }
    parts.push(Buffer.from(block.subarray(0, o)));
  }
  return Buffer.concat(parts);
}

/**
 * Decompress a payload in whichever of the kernel's formats it is (LZ4 and gzip here; xz and zstd
 * by their tools where installed). The kernel's build appends the decompressed size (u32 LE) to
 * every payload: anything else is not the kernel.
 */
function decompress(payload: Buffer): Buffer | undefined {
  if (payload.length < 8) return undefined;
  const size = payload.readUInt32LE(payload.length - 4);
  const stream = payload.subarray(0, payload.length - 4);
  const magic = payload.subarray(0, 6);
  let out: Buffer | undefined;
  if (magic.readUInt32LE(0) === 0x184c2102) out = lz4LegacyDecode(payload);
  else if (magic[0] === 0x1f && magic[1] === 0x8b) out = gunzipSync(stream);
  else {
    const tool = magic.equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))
      ? ['xz', '-dc']
      : magic.readUInt32LE(0) === 0xfd2fb528
        ? ['zstd', '-dc']
        : undefined;
    if (!tool) return undefined;
    const r = spawnSync(tool[0] ?? '', tool.slice(1), { input: stream, maxBuffer: 1 << 30 });
    if (r.status === 0) out = r.stdout;
  }
  return out?.length === size ? out : undefined;
}

/** True when `elf` is a 64-bit x86 ELF executable with a PVH entry note. */
export function hasPvhEntry(elf: Buffer): boolean {
  if (elf.length < 64 || elf.readUInt32BE(0) !== 0x7f454c46 || elf[4] !== 2 || elf.readUInt16LE(18) !== 62) return false;
  const phoff = Number(elf.readBigUInt64LE(32));
  const phentsize = elf.readUInt16LE(54);
  for (let i = 0; i < elf.readUInt16LE(56); i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length || elf.readUInt32LE(ph) !== 4 /* PT_NOTE */) continue;
    let n = Number(elf.readBigUInt64LE(ph + 8));
    const end = Math.min(elf.length, n + Number(elf.readBigUInt64LE(ph + 32)));
    while (n + 12 <= end) {
      const namesz = elf.readUInt32LE(n);
      const descsz = elf.readUInt32LE(n + 4);
      const type = elf.readUInt32LE(n + 8);
      if (type === PHYS32_ENTRY && elf.toString('latin1', n + 12, n + 12 + namesz).replace(/\0+$/, '') === 'Xen') return true;
      n += 12 + (((namesz + 3) >> 2) << 2) + (((descsz + 3) >> 2) << 2);
    }
  }
  return false;
}

/**
 * The kernel QEMU should boot for `vmlinuz`: `vmlinux` beside it (made now if missing, by
 * rename so a daemon reading meanwhile sees the whole file), or `vmlinuz` itself where no PVH
 * ELF can be had from it or its directory cannot be written.
 */
export function elfKernel(vmlinuz: string): string {
  const out = join(dirname(vmlinuz), 'vmlinux');
  if (existsSync(out)) return out;
  try {
    const payload = bzImagePayload(readFileSync(vmlinuz));
    const elf = payload && decompress(payload);
    if (!elf || !hasPvhEntry(elf)) return vmlinuz;
    const tmp = `${out}.tmp-${process.pid}`;
    try {
      writeFileSync(tmp, elf, { mode: 0o644 });
      renameSync(tmp, out);
    } finally {
      rmSync(tmp, { force: true });
    }
    return out;
  } catch {
    return vmlinuz;
  }
}
