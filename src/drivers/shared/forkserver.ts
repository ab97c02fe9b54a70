/**
 * The daemon's fork server (`realm-helper serve`, native/forkserver.c): realm-helper commands
 * run as children of a small static process instead of children of Node.
 *
 * Node forks itself for every spawn, and a fork costs in proportion to the forking process's
 * memory: page tables copied, then torn down by the child's exec — about 1 ms at 50 MB of RSS
 * and 10 ms at 350 MB, paid by every sandbox start and exec. The fork server's forks cost the
 * same whatever the daemon's heap.
 *
 * A child may be given directories to remove once it has been reaped (a one-shot sandbox's
 * cgroups), so their end costs the daemon nothing either.
 *
 * A child's stdio are unix stream sockets it connects back to a socket this module listens on
 * (0600, root), each introduced by its request id and descriptor number; the daemon's ends are
 * the same kind of stream that Node's own spawn hands out for `pipe`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { chmodSync, readSync, rmSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';

/** What a child's descriptor N is: a socket to the daemon, /dev/null, a file it writes (created 0600), or the same as another of its descriptors. */
export type StdioSpec = 'pipe' | 'ignore' | { file: string } | { dup: number };

/** The introduction each connected descriptor writes first: 8 hex digits of id, 2 of fd, newline. */
const HELLO_BYTES = 11;

/** How long a child that already ended may take to have its connections accepted. */
const LATE_CONNECT_MS = 2000;

/** A command run by the fork server: the parts of a ChildProcess the drivers use. */
export class ServedChild extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  /** A directory given to remove after it (`cleanup`) was still in use: the caller's to remove. */
  cleanupBusy = false;
  /**
   * Descriptor N's socket for `pipe` specs, null for the others. Each comes paused, whatever it
   * holds kept for its user: read it with `pipe()` or `resume()` (a 'data' listener alone does not
   * start it, and its end is not seen until it is read).
   */
  readonly stdio: (Socket | null)[];

  constructor(
    readonly id: number,
    specs: readonly StdioSpec[],
    private readonly server: Forkserver,
  ) {
    super();
    this.stdio = specs.map(() => null);
  }

  get stdin(): Writable | null {
    return this.stdio[0] ?? null;
  }
  get stdout(): Readable | null {
    return this.stdio[1] ?? null;
  }
  get stderr(): Readable | null {
    return this.stdio[2] ?? null;
  }

  /** Signal the command's process (not its tree); false once it has ended. */
  kill(sig: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    return this.server.signal(this.id, constants.signals[sig]);
  }

  /** Nothing to do: a served child never holds the daemon's event loop. */
  unref(): void {}
}

interface Pending {
  child: ServedChild;
  /** Descriptors still to connect. */
  missing: Set<number>;
  ended?: { code: number | null; signal: NodeJS.Signals | null };
  resolve: (c: ServedChild) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/**
 * One fork server and the socket its children connect back to. Start it with `Forkserver.start`;
 * `close()` ends it (children carry on, as children of a dead daemon would).
 */
export class Forkserver {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly live = new Map<number, ServedChild>();
  private stderr = '';
  private closed = false;

  private constructor(
    private readonly proc: ChildProcess,
    private readonly listener: Server,
    private readonly socketPath: string,
  ) {
    let buf = '';
    proc.stdout?.setEncoding('utf8');
    proc.stdout?.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        this.onEvent(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    proc.stderr?.on('data', (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4096);
    });
    proc.stdin?.on('error', () => undefined);
    proc.once('exit', (code, sig) =>
      this.onServerExit(`fork server ended (${sig ?? `exit ${code}`}): ${this.stderr.trim() || 'no message'}`),
    );
    listener.on('connection', (s) => {
      this.onConnection(s);
    });
  }

  /** Listen on `socketPath` and start the server; its children connect there. */
  static async start(helper: string, socketPath: string): Promise<Forkserver> {
    if (Buffer.byteLength(socketPath) >= 108)
      throw new Error(`fork server socket path too long (${socketPath}); use a shorter data dir`);
    rmSync(socketPath, { force: true });
    // Connections are not read until their user wants them (see onConnection).
    const listener = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      listener.once('error', reject);
      listener.listen(socketPath, () => {
        listener.off('error', reject);
        resolve();
      });
    });
    chmodSync(socketPath, 0o600);
    const proc = spawn(helper, ['serve', socketPath], { stdio: ['pipe', 'pipe', 'pipe'], env: {}, cwd: '/' });
    await new Promise<void>((resolve, reject) => {
      proc.once('spawn', resolve);
      proc.once('error', reject);
    });
    // Neither holds the daemon's event loop: its own servers and timers decide when it ends.
    listener.unref();
    proc.unref();
    for (const s of [proc.stdin, proc.stdout, proc.stderr]) (s as unknown as Socket | null)?.unref();
    return new Forkserver(proc, listener, socketPath);
  }

  /** Whether the server still runs (a dead one fails every spawn; make a new one). */
  get alive(): boolean {
    return !this.closed && this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /**
   * Run `realm-helper ARGS...` in a child of the server; resolves once every `pipe` descriptor is
   * connected (at once when there is none). Its `exit` event follows, never before the caller could listen.
   */
  spawn(args: readonly string[], stdio: readonly StdioSpec[], opts: { cleanup?: readonly string[] } = {}): Promise<ServedChild> {
    if (!this.alive) return Promise.reject(new Error(`fork server is not running: ${this.stderr.trim() || 'closed'}`));
    const id = this.nextId++;
    const child = new ServedChild(id, stdio, this);
    const cleanup = opts.cleanup ?? [];
    const fields = [
      ...stdio.map((s) => (s === 'pipe' ? 'p' : s === 'ignore' ? 'n' : 'file' in s ? `f${s.file}` : `d${s.dup}`)),
      ...args,
      ...cleanup,
    ];
    for (const f of fields) if (f.includes('\0')) return Promise.reject(new Error('a spawn argument holds a NUL byte'));
    const payload = Buffer.from(`${fields.join('\0')}\0`);
    return new Promise((resolve, reject) => {
      const missing = new Set(stdio.flatMap((s, i) => (s === 'pipe' ? [i] : [])));
      const p: Pending = { child, missing, resolve, reject };
      this.pending.set(id, p);
      this.live.set(id, child);
      this.holdLoop();
      this.proc.stdin?.write(
        Buffer.concat([Buffer.from(`R ${id} ${stdio.length} ${args.length} ${payload.length} ${cleanup.length}\n`), payload]),
      );
      this.settle(id, p); // nothing to connect: it runs
    });
  }

  /** Run a helper command to completion (no stdio but its stderr); throws with its message when it fails. */
  async run(args: readonly string[]): Promise<void> {
    const child = await this.spawn(args, ['ignore', 'ignore', 'pipe']);
    let err = '';
    const stderr = child.stderr;
    const drained = new Promise<void>((resolve) => (stderr ? stderr.once('close', () => resolve()) : resolve()));
    stderr?.on('data', (d: Buffer) => void (err += d.toString()));
    stderr?.resume();
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
      child.once('exit', (c: number | null, s: NodeJS.Signals | null) => resolve([c, s])),
    );
    await drained;
    if (code !== 0) throw new Error(`realm-helper ${args[0]} failed: ${err.trim() || `exit ${code} ${signal ?? ''}`}`);
  }

  /** Send a signal to a child not yet reaped (K message). */
  signal(id: number, signo: number): boolean {
    if (!this.alive || !this.live.has(id)) return false;
    this.proc.stdin?.write(`K ${id} ${signo}\n`);
    return true;
  }

  /** End the server (stdin closed) and stop listening; running children are not touched. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.proc.stdin?.end();
    // Connections made already belong to their users: do not wait for them.
    this.listener.close();
    rmSync(this.socketPath, { force: true });
    return Promise.resolve();
  }

  /** A child not yet reaped keeps the event loop alive, as Node's own children do: its exit is still to come. */
  private holdLoop(): void {
    const out = this.proc.stdout as unknown as Socket | null;
    if (this.live.size > 0) out?.ref();
    else out?.unref();
  }

  private onEvent(line: string): void {
    const m = /^E (\d+) ([xs]) (\d+)( busy)?$/.exec(line);
    if (!m) return;
    const id = Number(m[1]);
    const p = this.pending.get(id);
    const ended =
      m[2] === 'x' ? { code: Number(m[3]), signal: null } : { code: null, signal: SIGNAL_NAMES.get(Number(m[3])) ?? 'SIGKILL' };
    const child = this.live.get(id);
    if (child && m[4]) child.cleanupBusy = true;
    this.live.delete(id);
    this.holdLoop();
    if (!p) {
      if (child) this.emitExit(child, ended);
      return;
    }
    p.ended = ended;
    if (p.missing.size === 0) this.settle(id, p);
    // Its connections were made before it ran anything: they are still to be accepted.
    else p.timer ??= setTimeout(() => this.settle(id, p, true), LATE_CONNECT_MS);
  }

  private emitExit(child: ServedChild, e: { code: number | null; signal: NodeJS.Signals | null }): void {
    child.exitCode = e.code;
    child.signalCode = e.signal;
    // After the spawn's promise has resolved and its awaiter has attached its listeners.
    setImmediate(() => child.emit('exit', e.code, e.signal));
  }

  /** Resolve a spawn that is complete (or give up on one whose connections never came). */
  private settle(id: number, p: Pending, late = false): void {
    if (p.missing.size > 0 && !late) return;
    this.pending.delete(id);
    if (p.timer) clearTimeout(p.timer);
    if (p.missing.size > 0) {
      for (const s of p.child.stdio) s?.destroy();
      const how = p.ended ? (p.ended.signal ?? `exit ${p.ended.code}`) : 'no exit';
      p.reject(new Error(`helper command failed before connecting its stdio (${how}): ${this.stderr.trim() || 'no message'}`));
      return;
    }
    p.resolve(p.child);
    if (p.ended) this.emitExit(p.child, p.ended);
  }

  private onConnection(s: Socket): void {
    s.once('error', () => s.destroy());
    // The child wrote its introduction right after connecting: it is usually there already, and
    // read here it costs no turn of the event loop.
    const fd = (s as unknown as { _handle?: { fd?: number } })._handle?.fd;
    const hello = Buffer.alloc(HELLO_BYTES);
    let got = 0;
    try {
      if (typeof fd === 'number' && fd >= 0) got = readSync(fd, hello, 0, HELLO_BYTES, null);
    } catch {
      got = 0; // EAGAIN: not written yet
    }
    if (got === HELLO_BYTES) {
      this.introduced(s, hello);
      return;
    }
    // Not all there yet: take it as it comes, and put back what follows it.
    let have = hello.subarray(0, got);
    const onData = (d: Buffer): void => {
      have = Buffer.concat([have, d]);
      if (have.length < HELLO_BYTES) return;
      s.off('data', onData);
      s.pause();
      if (have.length > HELLO_BYTES) s.unshift(have.subarray(HELLO_BYTES));
      this.introduced(s, have.subarray(0, HELLO_BYTES));
    };
    s.on('data', onData);
    s.resume();
  }

  /** A connection that said whose descriptor it is: hand it to that spawn, paused (see `stdio`). */
  private introduced(s: Socket, hello: Buffer): void {
    const m = /^([0-9a-f]{8})(\d\d)\n$/.exec(hello.toString('latin1'));
    const p = m ? this.pending.get(parseInt(m[1] ?? '', 16)) : undefined;
    const fd = Number(m?.[2]);
    if (!p?.missing.has(fd)) {
      s.destroy();
      return;
    }
    p.missing.delete(fd);
    s.on('error', () => undefined); // a child's end going away is its exit's business
    p.child.stdio[fd] = s;
    this.settle(p.child.id, p);
  }

  private onServerExit(why: string): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      if (p.timer) clearTimeout(p.timer);
      for (const s of p.child.stdio) s?.destroy();
      p.reject(new Error(why));
      this.pending.delete(id);
      this.live.delete(id);
    }
    // Children it had not reaped yet are reported as killed: nobody can wait for them any more.
    for (const child of this.live.values()) this.emitExit(child, { code: null, signal: 'SIGKILL' });
    this.live.clear();
    this.listener.close();
  }
}
