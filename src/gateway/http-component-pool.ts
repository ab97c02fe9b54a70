/**
 * The runners of wasi:http/incoming-handler components (realm-wasm-http, native/realm-wasm-http.c:
 * Wasmtime's C API hosting the wasi:http/proxy world), pooled by pool.ts in the app's sandbox, never in the daemon. Each request gets a fresh store and
 * instance with the app's memory cap, fuel and deadline. `checkComponent` links a pushed component
 * once in a throwaway sandbox, so one of another world is refused before anything is kept.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DriverProcess } from '../drivers/driver.js';
import { FRAME_RESULT, FRAME_STDERR, FRAME_STDOUT, FrameReader, rec } from '../drivers/wasm/protocol.js';
import { type WasmRuntime, findRuntime } from '../drivers/wasm/runtime.js';
import type { Engine } from '../engine/engine.js';
import type { AppRecord } from '../store/store.js';
import { RealmError, errorMessage } from '../util/errors.js';
import { NATIVE_DIR } from '../util/paths.js';
import { type Box, type PoolRunner, RunnerPool, appSandbox, execRunner } from './pool.js';
import { MAX_OUTPUT } from './runners.js';

/** After its deadline, how long a request may take before its runner is killed (the runner's epoch comes first). */
const GRACE_MS = 5_000;
/** How long a runner may take to compile and link the component. */
const LOAD_MS = 60_000;
/** The response head (JSON {status, headers}), before any body frame. */
const FRAME_HEAD = 5;

export interface ComponentHead {
  status: number;
  headers: [string, string][];
}

/** How a request ended, by the runner's result frame. */
export interface ComponentAnswer {
  /** `ready`: the component loaded (the first result of a runner). */
  status: 'ready' | 'exit' | 'trap' | 'error';
  reason?: 'fuel' | 'deadline' | 'trap';
  error?: string;
  message?: string;
  /** How much the runner's memory grew while the request ran (its instance's memories and what the host held for it). */
  memoryBytes?: number;
}

export interface ComponentRequest {
  method: string;
  pathWithQuery: string;
  scheme: 'http' | 'https';
  authority: string;
  headers: [string, string][];
  body: Buffer;
}

export interface ComponentSink {
  head(h: ComponentHead): void;
  body(chunk: Buffer): void;
}

/** The component runner, installed beside realm-wasm (scripts/setup.sh). */
export const COMPONENT_RUNNER = 'realm-wasm-http';

/** The installed component runner, which must be this realm's own build (as runtime.ts checks the others). */
export function componentRunner(rt: WasmRuntime): string {
  const installed = join(dirname(rt.runner), COMPONENT_RUNNER);
  if (!existsSync(installed) || !readFileSync(installed).equals(readFileSync(join(NATIVE_DIR, COMPONENT_RUNNER)))) {
    throw new RealmError(
      'DRIVER_UNAVAILABLE',
      `the component runner ${installed} is missing or not this realm's: run \`npm start\` or scripts/setup.sh as root`,
    );
  }
  return installed;
}

function runtime(): WasmRuntime {
  try {
    return findRuntime();
  } catch (e) {
    throw new RealmError('DRIVER_UNAVAILABLE', `the wasm runner cannot start: ${errorMessage(e)}`);
  }
}

/**
 * Requests written to a busy runner of a busy app besides the one it runs (as runners.ts does for
 * CGI): under load a runner goes from one request to the next without sleeping for the daemon (a
 * wakeup each way saved, and on a loaded machine each wakeup can wait a time slice). One, so that
 * a request waits behind at most one other, as it would for the next free runner.
 */
const PIPELINE = 1;

/** A request written to a runner: where its answer goes, and what the component logged while it ran. */
interface Pending {
  sink: ComponentSink | undefined;
  bytes: number;
  log: string;
  resolve: (a: ComponentAnswer | typeof NOT_RUN) => void;
}

/** A request queued on a runner that died before it began: it never ran, and goes to another runner. */
const NOT_RUN = Symbol('not run');

/**
 * One realm-wasm-http: its first result says the component loaded, then one per request. It
 * answers its requests one at a time, in the order written, so a request may be written while
 * another runs (the pool's `pipeline`): it waits in the runner's stdin.
 */
class Runner implements PoolRunner {
  dead = false;
  /** The load (its result is the first), then written requests in order; the first is the one running. */
  private readonly queue: Pending[] = [];
  /** Kills the runner if the running request outlives its deadline by GRACE_MS (the runner's epoch comes first). */
  private guard: NodeJS.Timeout | undefined;
  readonly ready: Promise<ComponentAnswer>;

  constructor(
    private readonly proc: DriverProcess,
    private readonly timeoutMs: number,
    onDeath: () => void,
  ) {
    const reader = new FrameReader((kind, payload) => {
      const cur = this.queue[0];
      if (!cur) return;
      if (kind === FRAME_HEAD && cur.sink) {
        try {
          cur.sink.head(JSON.parse(payload.toString('utf8')) as ComponentHead);
        } catch {
          this.kill();
        }
      } else if (kind === FRAME_STDOUT && cur.sink) {
        cur.bytes += payload.length;
        if (cur.bytes > MAX_OUTPUT) this.kill();
        else cur.sink.body(Buffer.from(payload));
      } else if (kind === FRAME_STDERR) {
        cur.log = (cur.log + payload.toString('utf8')).slice(-4000);
      } else if (kind === FRAME_RESULT) {
        let r: ComponentAnswer;
        try {
          r = JSON.parse(payload.toString('utf8')) as ComponentAnswer;
        } catch {
          r = { status: 'error', message: 'the runner sent a result that is not JSON' };
        }
        this.queue.shift();
        this.arm();
        cur.resolve(r);
      }
    });
    this.ready = new Promise((resolve) => {
      this.queue.push({ sink: undefined, bytes: 0, log: '', resolve: (a) => resolve(a === NOT_RUN ? died('') : a) });
    });
    const guard = setTimeout(() => this.kill(), LOAD_MS);
    void this.ready.finally(() => clearTimeout(guard));
    proc.stdout.on('data', (c: Buffer) => reader.push(c));
    // The runner's own errors (a Python traceback): the last lines say why it died.
    let own = '';
    proc.stderr.on('data', (c: Buffer) => (own = (own + c.toString('utf8')).slice(-2000)));
    proc.stdin?.on('error', () => undefined);
    void proc.wait().then(() => {
      this.dead = true;
      clearTimeout(this.guard);
      const [cur, ...waiting] = this.queue.splice(0);
      cur?.resolve(died(own));
      for (const w of waiting) w.resolve(NOT_RUN);
      onDeath();
    });
  }

  /** The running request's guard (none when nothing runs). */
  private arm(): void {
    clearTimeout(this.guard);
    this.guard = this.queue.length ? setTimeout(() => this.kill(), this.timeoutMs + GRACE_MS) : undefined;
  }

  send(records: Buffer[]): void {
    this.proc.stdin?.write(Buffer.concat([...records, rec('X', '')]));
  }

  /** Run one request after those written before it; the answer comes with its result frame (or the runner's death). */
  request(req: ComponentRequest, sink: ComponentSink): Promise<(ComponentAnswer & { log: string }) | typeof NOT_RUN> {
    if (this.dead) return Promise.resolve(NOT_RUN);
    return new Promise((resolve) => {
      const pending: Pending = {
        sink,
        bytes: 0,
        log: '',
        // The component's last stdout/stderr lines (logged with a failure).
        resolve: (a) => resolve(a === NOT_RUN ? a : { ...a, log: pending.log.trim().split('\n').slice(-3).join(' | ') }),
      };
      this.queue.push(pending);
      if (this.queue.length === 1) this.arm();
      this.proc.stdin?.write(requestRecords(req));
    });
  }

  kill(): void {
    this.proc.kill().catch(() => undefined);
  }
}

/**
 * A request's records (R P S U H… B, then X) in one buffer: one allocation and one copy, where a
 * record each and a concatenation of them cost the daemon more than the runner's whole request.
 */
function requestRecords(req: ComponentRequest): Buffer {
  const fields: [string, string][] = [
    ['R', req.method],
    ['P', req.pathWithQuery],
    ['S', req.scheme],
    ['U', req.authority],
  ];
  let size = 5 * (fields.length + req.headers.length + 2) + req.body.length;
  for (const [, v] of fields) size += Buffer.byteLength(v);
  for (const [n, v] of req.headers) size += n.length + 1 + v.length; // latin1: a byte a character
  const buf = Buffer.allocUnsafe(size);
  let at = 0;
  const head = (tag: string, n: number): void => {
    buf[at] = tag.charCodeAt(0);
    buf.writeUInt32BE(n, at + 1);
    at += 5;
  };
  for (const [tag, v] of fields) {
    head(tag, Buffer.byteLength(v));
    at += buf.write(v, at);
  }
  for (const [n, v] of req.headers) {
    head('H', n.length + 1 + v.length);
    at += buf.write(n, at, 'latin1');
    buf[at++] = 0;
    at += buf.write(v, at, 'latin1');
  }
  head('B', req.body.length);
  at += req.body.copy(buf, at);
  head('X', 0);
  return buf;
}

/** The answer of a request whose runner ended while it ran; `own`: the runner's own last stderr. */
function died(own: string): ComponentAnswer {
  const why = own.trim().split('\n').pop();
  return { status: 'error', error: 'RUNNER_DIED', message: `the app's runner ended${why ? `: ${why}` : ''}` };
}

function appRecords(app: { memoryBytes: number; fuel?: number | undefined; timeoutMs: number }, bytes: Buffer): Buffer[] {
  return [
    rec('W', bytes),
    rec('M', String(app.memoryBytes)),
    ...(app.fuel ? [rec('F', String(app.fuel))] : []),
    rec('T', String(app.timeoutMs)),
  ];
}

function startRunner(box: Box, memoryBytes: number, timeoutMs: number, onDeath: () => void): Runner {
  const rt = runtime();
  return new Runner(execRunner(box, [componentRunner(rt), rt.lib], memoryBytes), timeoutMs, onDeath);
}

/**
 * Compile and link a pushed component once, in a throwaway sandbox: APP_UNSUPPORTED for one that
 * is not a wasi:http/incoming-handler or imports what the runner does not provide, APP_INVALID for
 * one that does not compile or traps while it is instantiated.
 */
export async function checkComponent(engine: Engine, bytes: Buffer, memoryBytes: number, owner: string): Promise<void> {
  const box = await appSandbox(engine, memoryBytes, 1, owner);
  try {
    const runner = startRunner(box, memoryBytes, 10_000, () => undefined);
    runner.send([...appRecords({ memoryBytes, timeoutMs: 10_000 }, bytes), rec('C', '')]);
    const r = await runner.ready;
    runner.kill();
    if (r.status === 'ready') return;
    const why = (r.message ?? 'no message').slice(0, 2000);
    if (r.error === 'WASM_UNSUPPORTED')
      throw new RealmError(
        'APP_UNSUPPORTED',
        `the component is not one the gateway serves: ${why}. The gateway serves wasi:http/incoming-handler@0.2.x components importing only the wasi:http/proxy world (no files, sockets or environment), and WASI preview 1 CGI modules`,
      );
    throw new RealmError('APP_INVALID', `the component does not load: ${why}`);
  } finally {
    box.drop();
  }
}

/** The runners of one component app (one version of it: its bytes and limits). */
export class ComponentPool extends RunnerPool<Runner> {
  constructor(
    engine: Engine,
    app: AppRecord,
    private readonly bytes: () => Buffer,
  ) {
    super(engine, app, PIPELINE);
  }

  protected async launch(box: Box, died: () => void): Promise<Runner> {
    const runner = startRunner(box, this.app.memoryBytes, this.app.timeoutMs, died);
    runner.send(appRecords(this.app, this.bytes()));
    const r = await runner.ready;
    if (r.status !== 'ready') {
      runner.kill();
      throw new RealmError('APP_FAILED', `app ${this.app.name} did not load: ${r.message ?? 'no message'}`);
    }
    return runner;
  }

  /** Run one request; the head and body go to `sink` as they come. The runner's last log lines come with a failure. */
  async request(req: ComponentRequest, sink: ComponentSink): Promise<ComponentAnswer & { log: string }> {
    // A request queued on a runner that died (the one before it killed it) never ran: it goes again.
    for (let tries = 0; tries <= 3; tries++) {
      const a = await this.use((runner) => runner.request(req, sink));
      if (a === NOT_RUN) continue;
      this.ended(a.status === 'trap' && a.reason === 'deadline');
      return a;
    }
    return { status: 'error', error: 'RUNNER_DIED', message: "the app's runners ended", log: '' };
  }
}
