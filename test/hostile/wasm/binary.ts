/**
 * Large WebAssembly modules written byte by byte (the binary format's few sections), for compile
 * bombs too big to go through wat2wasm's text quickly. See the spec's binary format: a module is
 * the magic and version, then sections of id + size + payload; vectors are a count and items.
 */

/** Unsigned LEB128. */
function leb(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n = Math.floor(n / 128);
    if (n) b |= 0x80;
    out.push(b);
  } while (n);
  return Buffer.from(out);
}

const section = (id: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([id]), leb(payload.length), payload]);
const vec = (items: Buffer[]): Buffer => Buffer.concat([leb(items.length), ...items]);
const name = (s: string): Buffer => Buffer.concat([leb(Buffer.byteLength(s)), Buffer.from(s)]);

/**
 * A WASI command of `bodies.length` functions of type () -> (), function 0 exported as `_start`,
 * with one memory page exported as `memory`. Each body is its locals' declarations and
 * instructions, without the size and the final `end`.
 */
export function moduleOf(bodies: Buffer[]): Buffer {
  return Buffer.concat([
    Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]),
    section(1, vec([Buffer.from([0x60, 0x00, 0x00])])),
    section(3, vec(bodies.map(() => leb(0)))),
    section(5, vec([Buffer.from([0x00, 0x01])])),
    section(
      7,
      vec([
        Buffer.concat([name('_start'), Buffer.from([0x00, 0x00])]),
        Buffer.concat([name('memory'), Buffer.from([0x02, 0x00])]),
      ]),
    ),
    section(
      10,
      vec(
        bodies.map((b) => {
          const body = Buffer.concat([b, Buffer.from([0x0b])]);
          return Buffer.concat([leb(body.length), body]);
        }),
      ),
    ),
  ]);
}

/** A small function body: no locals, `i32.const k; drop` (so no two bodies are alike). */
export function smallBody(k: number): Buffer {
  return Buffer.concat([leb(0), Buffer.from([0x41]), leb(k & 0x3fff), Buffer.from([0x1a])]);
}
