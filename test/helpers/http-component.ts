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

export const PROXY_WORLD = `world full {
  import wasi:http/types@${WASI};
  import wasi:http/outgoing-handler@${WASI};
  import wasi:io/poll@${WASI};
  import wasi:clocks/monotonic-clock@${WASI};
  import wasi:clocks/wall-clock@${WASI};
  import wasi:random/random@${WASI};
  import wasi:cli/stdout@${WASI};
  export wasi:http/incoming-handler@${WASI};
}`;

/**
 * A handler that calls most of the proxy world's host functions (fields, the incoming request,
 * clocks, poll, random, stdout, an outgoing request and its options) and answers with what they
 * returned: the bytes of its memory from 1024 to 1248 (where each call's results were stored), then
 * the first request header's name and value and the value of its `host` header. It logs "log line".
 */
export const PROXY_WAT = `(module
  (import ${T} "[method]incoming-request.method" (func $method (param i32 i32)))
  (import ${T} "[method]incoming-request.headers" (func $req_headers (param i32) (result i32)))
  (import ${T} "[method]incoming-request.scheme" (func $scheme (param i32 i32)))
  (import ${T} "[method]incoming-request.authority" (func $authority (param i32 i32)))
  (import ${T} "[method]fields.entries" (func $entries (param i32 i32)))
  (import ${T} "[method]fields.get" (func $get (param i32 i32 i32 i32)))
  (import ${T} "[method]fields.has" (func $has (param i32 i32 i32) (result i32)))
  (import ${T} "[static]fields.from-list" (func $from_list (param i32 i32 i32)))
  (import ${T} "[method]fields.set" (func $set (param i32 i32 i32 i32 i32 i32)))
  (import ${T} "[method]fields.delete" (func $delete (param i32 i32 i32 i32)))
  (import ${T} "[method]fields.clone" (func $clone (param i32) (result i32)))
  (import ${T} "[constructor]fields" (func $fields_new (result i32)))
  (import ${T} "[resource-drop]fields" (func $drop_fields (param i32)))
  (import ${T} "[constructor]outgoing-response" (func $resp_new (param i32) (result i32)))
  (import ${T} "[method]outgoing-response.body" (func $resp_body (param i32 i32)))
  (import ${T} "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import ${T} "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import ${T} "[static]response-outparam.set" (func $out_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import ${T} "[constructor]outgoing-request" (func $oreq_new (param i32) (result i32)))
  (import ${T} "[method]outgoing-request.set-method" (func $oreq_set_method (param i32 i32 i32 i32) (result i32)))
  (import ${T} "[method]outgoing-request.method" (func $oreq_method (param i32 i32)))
  (import ${T} "[constructor]request-options" (func $ro_new (result i32)))
  (import ${T} "[method]request-options.set-connect-timeout" (func $ro_set (param i32 i32 i64) (result i32)))
  (import ${T} "[method]request-options.connect-timeout" (func $ro_get (param i32 i32)))
  (import "wasi:http/outgoing-handler@${WASI}" "handle" (func $send (param i32 i32 i32 i32)))
  (import ${S} "[method]output-stream.blocking-write-and-flush" (func $write (param i32 i32 i32 i32)))
  (import ${S} "[resource-drop]output-stream" (func $drop_out (param i32)))
  (import "wasi:io/poll@${WASI}" "poll" (func $poll (param i32 i32 i32)))
  (import "wasi:io/poll@${WASI}" "[method]pollable.ready" (func $ready (param i32) (result i32)))
  (import "wasi:io/poll@${WASI}" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:clocks/monotonic-clock@${WASI}" "now" (func $mono_now (result i64)))
  (import "wasi:clocks/monotonic-clock@${WASI}" "subscribe-duration" (func $sub_dur (param i64) (result i32)))
  (import "wasi:clocks/wall-clock@${WASI}" "now" (func $wall_now (param i32)))
  (import "wasi:random/random@${WASI}" "get-random-bytes" (func $rnd (param i64 i32)))
  (import "wasi:random/random@${WASI}" "get-random-u64" (func $rnd64 (result i64)))
  (import "wasi:cli/stdout@${WASI}" "get-stdout" (func $stdout (result i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))
  (data (i32.const 0) "host")
  (data (i32.const 8) "x-none")
  (data (i32.const 16) "a-b")
  (data (i32.const 24) "v1v2v3")
  (data (i32.const 32) "bad name")
  (data (i32.const 48) "log line")
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get 2) (i32.const 1)))
                           (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "wasi:http/incoming-handler@${WASI}#handle") (param $req i32) (param $out i32)
    (local $h i32) (local $f2 i32) (local $f3 i32) (local $p i32) (local $s i32) (local $oreq i32) (local $ro i32)
    (local $resp i32) (local $body i32) (local $os i32)
    (call $method (local.get $req) (i32.const 1024))
    (local.set $h (call $req_headers (local.get $req)))
    (call $entries (local.get $h) (i32.const 1040))
    (call $get (local.get $h) (i32.const 0) (i32.const 4) (i32.const 1048))
    (i32.store (i32.const 1056) (call $has (local.get $h) (i32.const 8) (i32.const 6)))
    ;; from-list([("a-b", "v1")]) at 2000
    (i32.store (i32.const 2000) (i32.const 16)) (i32.store (i32.const 2004) (i32.const 3))
    (i32.store (i32.const 2008) (i32.const 24)) (i32.store (i32.const 2012) (i32.const 2))
    (call $from_list (i32.const 2000) (i32.const 1) (i32.const 1060))
    (local.set $f2 (i32.load (i32.const 1064)))
    ;; set(f2, "a-b", ["v2", "v3"]) from 2016
    (i32.store (i32.const 2016) (i32.const 26)) (i32.store (i32.const 2020) (i32.const 2))
    (i32.store (i32.const 2024) (i32.const 28)) (i32.store (i32.const 2028) (i32.const 2))
    (call $set (local.get $f2) (i32.const 16) (i32.const 3) (i32.const 2016) (i32.const 2) (i32.const 1068))
    (call $set (local.get $f2) (i32.const 32) (i32.const 8) (i32.const 2016) (i32.const 1) (i32.const 1072))
    (call $set (local.get $h) (i32.const 16) (i32.const 3) (i32.const 2016) (i32.const 1) (i32.const 1076))
    (local.set $f3 (call $clone (local.get $f2)))
    (call $delete (local.get $f2) (i32.const 16) (i32.const 3) (i32.const 1080))
    (call $entries (local.get $f2) (i32.const 1084))
    (call $drop_fields (local.get $f2))
    (call $scheme (local.get $req) (i32.const 1092))
    (call $authority (local.get $req) (i32.const 1108))
    (i64.store (i32.const 1120) (call $mono_now))
    (local.set $p (call $sub_dur (i64.const 1000000)))
    (i32.store (i32.const 2032) (local.get $p))
    (call $poll (i32.const 2032) (i32.const 1) (i32.const 1128))
    (i32.store (i32.const 1136) (call $ready (local.get $p)))
    (call $block (local.get $p))
    (call $wall_now (i32.const 1144))
    (call $rnd (i64.const 16) (i32.const 1160))
    (i64.store (i32.const 1168) (call $rnd64))
    (local.set $s (call $stdout))
    (call $write (local.get $s) (i32.const 48) (i32.const 8) (i32.const 1176))
    (local.set $ro (call $ro_new))
    (i32.store (i32.const 1180) (call $ro_set (local.get $ro) (i32.const 1) (i64.const 5000)))
    (call $ro_get (local.get $ro) (i32.const 1184))
    (local.set $oreq (call $oreq_new (local.get $f3)))
    (i32.store (i32.const 1200) (call $oreq_set_method (local.get $oreq) (i32.const 2) (i32.const 0) (i32.const 0)))
    (call $oreq_method (local.get $oreq) (i32.const 1204))
    (call $send (local.get $oreq) (i32.const 1) (local.get $ro) (i32.const 1216))
    ;; the response: the region 1024..1248 raw, then the first entry's name and value
    (local.set $resp (call $resp_new (call $fields_new)))
    (call $resp_body (local.get $resp) (i32.const 1300))
    (local.set $body (i32.load (i32.const 1304)))
    (call $body_write (local.get $body) (i32.const 1308))
    (local.set $os (i32.load (i32.const 1312)))
    (call $out_set (local.get $out) (i32.const 0) (local.get $resp) (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $write (local.get $os) (i32.const 1024) (i32.const 224) (i32.const 1320))
    (call $write (local.get $os) (i32.load (i32.load (i32.const 1040))) (i32.load (i32.add (i32.load (i32.const 1040)) (i32.const 4))) (i32.const 1320))
    (call $write (local.get $os) (i32.load (i32.add (i32.load (i32.const 1040)) (i32.const 8))) (i32.load (i32.add (i32.load (i32.const 1040)) (i32.const 12))) (i32.const 1320))
    (call $write (local.get $os) (i32.load (i32.load (i32.const 1048))) (i32.load (i32.add (i32.load (i32.const 1048)) (i32.const 4))) (i32.const 1320))
    (call $drop_out (local.get $os))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (i32.const 1336)))
)`;
