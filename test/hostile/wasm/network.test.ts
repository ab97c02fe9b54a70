/**
 * Hostile WebAssembly against the network: a preview 2 component that calls wasi:sockets to open a
 * TCP connection to a listener this test starts on the host's 127.0.0.1 (denied: the listener sees
 * no connection), and the runner itself, found on the host while it runs, living in a sandbox of
 * its own (network, mount and pid namespaces, a sandbox uid, a realm cgroup). (Runs once: see
 * common.ts.)
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { type AddressInfo, type Server, createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { run } from '@realm/sdk';
import { isSandboxUid, removeTestDirs, startTestDaemon, type TestDaemon } from '../../helpers/daemon.js';
import { componentImporting, wasmFile, wasmSkipReason, wat } from '../../helpers/wasm.js';
import { assertContained, waitFor } from '../common.js';
import { watModule } from './common.js';

const skip = await wasmSkipReason();
if (skip) console.log(`# skipping the wasm driver's hostile network tests: ${skip}`);

/** wasi:sockets' error-code enum, in order (WASI 0.2). */
const ERROR_CODES = [
  'unknown',
  'access-denied',
  'not-supported',
  'invalid-argument',
  'out-of-memory',
  'timeout',
  'concurrency-conflict',
  'not-in-progress',
  'would-block',
  'invalid-state',
  'new-socket-limit',
  'address-not-bindable',
  'address-in-use',
  'remote-unreachable',
  'connection-refused',
  'connection-reset',
  'connection-aborted',
  'datagram-too-large',
  'name-unresolvable',
  'temporary-resolver-failure',
  'permanent-resolver-failure',
];

const SOCKETS_WORLD = `package realm:hostile;
world sockets {
  import wasi:sockets/instance-network@0.2.12;
  import wasi:sockets/tcp-create-socket@0.2.12;
  import wasi:sockets/tcp@0.2.12;
}`;

/**
 * Create an IPv4 TCP socket and start connecting it to 127.0.0.1:`port`, through the canonical
 * ABI's lowered calls (results through a return pointer: a tag byte, then the payload). Prints
 * `create: ok|<error letter>` and `connect: ok|<error letter>` ('A' + the error code's index).
 */
function connectModule(port: number): string {
  return `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi:sockets/instance-network@0.2.12" "instance-network" (func $network (result i32)))
  (import "wasi:sockets/tcp-create-socket@0.2.12" "create-tcp-socket" (func $create (param i32 i32)))
  (import "wasi:sockets/tcp@0.2.12" "[method]tcp-socket.start-connect"
    (func $connect (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "create: ?\\nconnect: ?\\n")
  ;; Print the line at $at ($len bytes), its last character before the newline set to $c.
  (func $say (param $at i32) (param $len i32) (param $c i32)
    (i32.store8 (i32.add (local.get $at) (i32.sub (local.get $len) (i32.const 2))) (local.get $c))
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  ;; 'K' for ok (written as "ok" by the test's reading), else 'A' + the error code.
  (func $outcome (param $ret i32) (result i32)
    (if (result i32) (i32.load8_u (local.get $ret))
      (then (i32.add (i32.const 65) (i32.load8_u (i32.add (local.get $ret) (i32.const 4)))))
      (else (i32.const 107))))
  (func (export "_start")
    (call $create (i32.const 0) (i32.const 200))
    (call $say (i32.const 100) (i32.const 10) (call $outcome (i32.const 200)))
    (if (i32.load8_u (i32.const 200)) (then (return)))
    ;; ip-socket-address::ipv4 { port, address: (127, 0, 0, 1) }, the variant's unused slots zero.
    (call $connect (i32.load (i32.const 204)) (call $network)
      (i32.const 0) (i32.const ${port}) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1)
      (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 300))
    ;; start-connect's result<_, error-code>: the tag, then the error code at offset 1.
    (i32.store8 (i32.const 304) (i32.load8_u (i32.const 301)))
    (call $say (i32.const 110) (i32.const 11) (call $outcome (i32.const 300)))))`;
}

/** The outcome a line of the module's output names: 'ok' or the error code. */
function outcome(stdout: string, what: string): string | undefined {
  const c = new RegExp(`^${what}: (.)$`, 'm').exec(stdout)?.[1];
  if (c === undefined) return undefined;
  return c === 'k' ? 'ok' : (ERROR_CODES[c.charCodeAt(0) - 65] ?? `code ${c}`);
}

void describe('hostile wasm: the network', { skip }, () => {
  let t: TestDaemon;
  let listener: Server;
  let port = 0;
  let connections = 0;
  before(async () => {
    if (skip) return;
    t = await startTestDaemon({ warm: 0 });
    listener = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    port = (listener.address() as AddressInfo).port;
  });
  after(async () => {
    listener?.close();
    if (!t) return;
    await t.close();
    removeTestDirs(t);
  });

  void it("a component's wasi:sockets TCP connect to the host's 127.0.0.1 is denied; the listener sees nothing", async (c) => {
    const comp = await componentImporting(await wat(connectModule(port)), SOCKETS_WORLD, [
      'wasi-io',
      'wasi-clocks',
      'wasi-sockets',
    ]);
    const r = await run({ language: 'wasm', files: [wasmFile(comp)], timeout: '20s' }, t.client);
    assert.equal(r.verdict, 'ok', `${r.verdict}: ${r.stderr}`);
    const create = outcome(r.stdout, 'create');
    const connect = outcome(r.stdout, 'connect');
    c.diagnostic(`create-tcp-socket: ${create}; start-connect: ${connect}`);
    assert.ok(create !== undefined, r.stdout);
    // Not even a socket: Wasmtime's WASI denies TCP to a component unless the host allows it.
    assert.equal(create, 'access-denied', r.stdout);
    assert.equal(connect, undefined, r.stdout);
    // Whatever the module does next, nothing reached the host's listener.
    await sleep(300);
    assert.equal(connections, 0, 'the listener on the host saw a connection');
    await assertContained(t);
  });

  void it('the runner lives in a sandbox: its own network, mount and pid namespaces, a sandbox uid, a realm cgroup', async () => {
    const loop = await wat(watModule('(loop $l (br $l))'));
    const running = run({ language: 'wasm', files: [wasmFile(loop)], timeout: '10s' }, t.client);
    /** realm-wasm processes of this daemon's sandboxes (their cgroup is under its root). */
    const runners = (): string[] =>
      readdirSync('/proc')
        .filter((p) => /^\d+$/.test(p))
        .filter((p) => {
          try {
            return (
              readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]?.endsWith('/realm-wasm') &&
              readFileSync(`/proc/${p}/cgroup`, 'utf8').includes(`/${t.cgroupRoot}/`)
            );
          } catch {
            return false;
          }
        });
    assert.ok(await waitFor(() => runners().length > 0, 10_000), 'no runner of this daemon was seen');
    const [pid] = runners();
    const ns = (p: string | number, kind: string): string => readlinkSync(`/proc/${p}/ns/${kind}`);
    for (const kind of ['net', 'mnt', 'pid', 'user'])
      assert.notEqual(ns(pid, kind), ns(process.pid, kind), `the runner shares the host's ${kind} namespace`);
    const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    assert.ok(isSandboxUid(uid), `the runner runs as host uid ${uid}`);
    // Its network namespace has loopback only.
    const ifaces = readFileSync(`/proc/${pid}/net/dev`, 'utf8')
      .split('\n')
      .slice(2)
      .map((l) => l.split(':')[0]?.trim())
      .filter(Boolean);
    assert.deepEqual(ifaces, ['lo']);
    const r = await running;
    assert.equal(r.verdict, 'timeout');
    await assertContained(t);
  });
});
