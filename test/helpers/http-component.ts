/**
 * wasi:http/incoming-handler test components, built from source in the test (no binary blobs): a
 * core module in WebAssembly text (wabt's wat2wasm) whose imports are the canonical ABI of
 * wasi:http/types and wasi:io/streams, given the WIT of WASI 0.2.12 that @bytecodealliance/jco
 * ships (its lib/wit/builtin) with `componentEmbed`, then made a component with `componentNew`
 * (wasm-tools' component embed and new, from jco's API, in a child process).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/util/paths.js';
import { wat } from './wasm.js';

const run = promisify(execFile);
const WASI = '0.2.12';
const BUILTIN = join(PACKAGE_ROOT, 'node_modules', '@bytecodealliance', 'jco', 'lib', 'wit', 'builtin', WASI);

/** One WIT document: the world, then each WASI package it needs as a nested package (but those `world` brings itself). */
function witSource(world: string): string {
  const packages = ['io', 'clocks', 'random', 'cli', 'filesystem', 'sockets', 'http'];
  const nested = packages
    .filter((p) => !world.includes(`package wasi:${p}@`))
    .map((p) =>
      readFileSync(join(BUILTIN, `wasi-${p}`, 'package.wit'), 'utf8')
        .replace(/^package ([^;]+);/m, 'package $1 {')
        .concat('\n}\n'),
    );
  return [`package realm:test;\n${world}\n`, ...nested].join('\n');
}

const EMBED = `
import { componentEmbed, componentNew } from '@bytecodealliance/jco';
import { readFileSync } from 'node:fs';
const [core, wit, world] = [readFileSync(0), process.argv[1], process.argv[2]];
const embedded = await componentEmbed({ binary: core, witSource: wit, world });
process.stdout.write(await componentNew(embedded));
`;

/** A component of `world` (WIT: `world NAME { … }`, named `name`, and any package of its own) from a core module in WAT. */
export async function httpComponent(source: string, world = HANDLER_WORLD, name = 'handler'): Promise<Buffer> {
  const core = await wat(source);
  const child = run(process.execPath, ['--input-type=module', '-e', EMBED, witSource(world), name], {
    cwd: PACKAGE_ROOT,
    encoding: 'buffer',
    maxBuffer: 64 * 1024 ** 2,
    timeout: 120_000,
  });
  child.child.stdin?.end(core);
  return (await child).stdout;
}

export const HANDLER_WORLD = `world handler {
  import wasi:http/types@${WASI};
  export wasi:http/incoming-handler@${WASI};
}`;

const T = `"wasi:http/types@${WASI}"`;
const S = `"wasi:io/streams@${WASI}"`;

/**
 * A handler whose path picks what it does: `/loop` spins without calls, `/trap` hits unreachable,
 * `/grow` grows its memory a page at a time until refused and answers how many pages it has,
 * `/echo` answers the request body, `/s…` answers 201; anything else "hello from a component: PATH".
 * Each answer has `content-type: text/plain` and `x-component: hello`.
 */
export const HANDLER_WAT = `(module
  (import ${T} "[constructor]fields" (func $fields_new (result i32)))
  (import ${T} "[method]fields.append" (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import ${T} "[constructor]outgoing-response" (func $resp_new (param i32) (result i32)))
  (import ${T} "[method]outgoing-response.set-status-code" (func $set_status (param i32 i32) (result i32)))
  (import ${T} "[method]outgoing-response.body" (func $resp_body (param i32 i32)))
  (import ${T} "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import ${T} "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import ${T} "[static]response-outparam.set" (func $out_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import ${T} "[method]incoming-request.path-with-query" (func $path (param i32 i32)))
  (import ${T} "[method]incoming-request.consume" (func $consume (param i32 i32)))
  (import ${T} "[method]incoming-body.stream" (func $in_stream (param i32 i32)))
  (import ${S} "[method]input-stream.blocking-read" (func $read (param i32 i64 i32)))
  (import ${S} "[method]output-stream.blocking-write-and-flush" (func $write (param i32 i32 i32 i32)))
  (import ${S} "[resource-drop]output-stream" (func $drop_out (param i32)))
  (import ${S} "[resource-drop]input-stream" (func $drop_in (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 0) "content-type")
  (data (i32.const 16) "text/plain")
  (data (i32.const 32) "x-component")
  (data (i32.const 48) "hello")
  (data (i32.const 64) "hello from a component: ")
  (data (i32.const 96) "pages: ")
  ;; A bump allocator: each request's instance is fresh, so nothing is ever freed.
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1))) (i32.const -1))
        (then unreachable))))
    (local.get $p))
  ;; n in decimal at 200; its length
  (func $itoa (param $n i32) (result i32)
    (local $i i32) (local $j i32)
    (loop $d
      (i32.store8 (i32.add (i32.const 240) (local.get $i)) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $d (local.get $n)))
    (loop $r
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (i32.store8 (i32.add (i32.const 200) (local.get $j)) (i32.load8_u (i32.add (i32.const 240) (local.get $i))))
      (local.set $j (i32.add (local.get $j) (i32.const 1)))
      (br_if $r (local.get $i)))
    (local.get $j))
  (func (export "wasi:http/incoming-handler@${WASI}#handle") (param $req i32) (param $out i32)
    (local $h i32) (local $resp i32) (local $body i32) (local $os i32) (local $pp i32) (local $pl i32)
    (local $c i32) (local $n i32) (local $ib i32) (local $is i32)
    ;; option<string> at 1024: tag, pointer, length
    (call $path (local.get $req) (i32.const 1024))
    (local.set $pp (i32.load (i32.const 1028)))
    (local.set $pl (i32.load (i32.const 1032)))
    (local.set $c (i32.load8_u (i32.add (local.get $pp) (i32.const 1))))
    (if (i32.eq (local.get $c) (i32.const 108)) (then (loop $spin (br $spin))))
    (if (i32.eq (local.get $c) (i32.const 116)) (then unreachable))
    (local.set $h (call $fields_new))
    (call $fields_append (local.get $h) (i32.const 0) (i32.const 12) (i32.const 16) (i32.const 10) (i32.const 1040))
    (call $fields_append (local.get $h) (i32.const 32) (i32.const 11) (i32.const 48) (i32.const 5) (i32.const 1040))
    (local.set $resp (call $resp_new (local.get $h)))
    (if (i32.eq (local.get $c) (i32.const 115)) (then (drop (call $set_status (local.get $resp) (i32.const 201)))))
    (call $resp_body (local.get $resp) (i32.const 1048))
    (local.set $body (i32.load (i32.const 1052)))
    (call $body_write (local.get $body) (i32.const 1056))
    (local.set $os (i32.load (i32.const 1060)))
    (call $out_set (local.get $out) (i32.const 0) (local.get $resp) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (if (i32.eq (local.get $c) (i32.const 103))
      (then
        (loop $g (br_if $g (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (call $write (local.get $os) (i32.const 96) (i32.const 7) (i32.const 1064))
        (local.set $n (call $itoa (memory.size)))
        (call $write (local.get $os) (i32.const 200) (local.get $n) (i32.const 1064)))
      (else (if (i32.eq (local.get $c) (i32.const 101))
        (then
          (call $consume (local.get $req) (i32.const 1072))
          (local.set $ib (i32.load (i32.const 1076)))
          (call $in_stream (local.get $ib) (i32.const 1080))
          (local.set $is (i32.load (i32.const 1084)))
          (block $done (loop $rd
            (call $read (local.get $is) (i64.const 65536) (i32.const 1088))
            (br_if $done (i32.load8_u (i32.const 1088)))
            (call $write (local.get $os) (i32.load (i32.const 1092)) (i32.load (i32.const 1096)) (i32.const 1064))
            (br $rd)))
          (call $drop_in (local.get $is)))
        (else
          (call $write (local.get $os) (i32.const 64) (i32.const 24) (i32.const 1064))
          (call $write (local.get $os) (local.get $pp) (local.get $pl) (i32.const 1064))))))
    (call $drop_out (local.get $os))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 1104)))
)`;
