/**
 * The host side of realm-vmagent's protocol (see native/realm-vmagent.c): frames of
 * type u8 | id u32be | len u32be | payload over the unix socket QEMU serves for the guest's
 * virtio-serial port "realm". One connection per VM carries every exec, multiplexed by id.
 * An agent of protocol 2 (it says so in 'R') runs terminal execs and acknowledges stdin ('a'):
 * at most WINDOW bytes of an exec's stdin are then in flight, and writes wait for the rest.
 */
import { connect, type Socket } from 'node:net';
import { PassThrough, Writable } from 'node:stream';
import { signalName } from '../shared/util.js';

export interface AgentExit {
  exitCode: number | null;
  signal: string | null;
  oomKilled: boolean;
  cpuMs: number;
  memoryBytes: number;
}

export interface AgentExec {
  stdin: Writable;
  stdout: PassThrough;
  stderr: PassThrough;
  exit: Promise<AgentExit>;
  signal(signo: number): void;
  kill(): void;
  /**
   * Stop waiting for the guest: the exec ends now as killed (its output ends, its exit resolves)
   * and whatever the guest still sends for it is dropped. For a guest that did not answer a kill.
   */
  abandon(): void;
  /** A terminal exec's new window size. */
  resize(rows: number, cols: number): void;
}

/** What runs in a guest: the sandbox cgroup's counters and every user process (kernel threads left out). */
export interface GuestUsage {
  pidsCurrent: number;
  /** The most tasks the sandbox's cgroup has held since the VM booted. */
  pidsPeak: number;
  memoryBytes: number;
  processes: { pid: number; uid: number; argv: string[] }[];
}

interface Pending {
  stdout: PassThrough;
  stderr: PassThrough;
  done: (e: AgentExit) => void;
  fail: (e: Error) => void;
  /** stdin bytes the agent has taken ('a'). */
  acked: (n: number) => void;
}

const MAX_FRAME = (1 << 20) - 9;
/** stdin in flight per exec (native/vmagent.h's WINDOW), in frames of at most STDIN_CHUNK. */
const WINDOW = 256 * 1024;
const STDIN_CHUNK = 65536;

export class AgentConnection {
  private buf: Buffer = Buffer.alloc(0);
  // Ids start at random: execs of an earlier connection (before a daemon restart) may still run.
  private next = 1 + Math.floor(Math.random() * 0x3fffffff);
  private readonly execs = new Map<number, Pending>();
  private closed = false;
  private readyWaiters: (() => void)[] = [];
  private readonly queries = new Map<number, (u: GuestUsage | undefined) => void>();
  private ready = false;
  /** The agent's protocol version (from its 'R'; 1 when it names none). */
  private version = 1;

  /** Output streams that are full (see `hold`). */
  private held = 0;

  private constructor(private readonly sock: Socket) {
    sock.on('data', (d: Buffer) => this.onData(d));
    sock.on('close', () => this.onClose());
    sock.on('error', () => undefined);
  }

  /** Connect to the VM's agent socket and wait for the agent's "ready" (bounded by `timeoutMs`). */
  static async open(path: string, timeoutMs: number, alive: () => boolean): Promise<AgentConnection> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const sock = await new Promise<Socket | undefined>((resolve) => {
        const s = connect(path);
        s.once('connect', () => resolve(s));
        s.once('error', () => resolve(undefined));
      });
      if (sock) {
        const conn = new AgentConnection(sock);
        // The agent answers a ping with "ready" (it also says so once at boot, when nobody may be listening).
        conn.send('P', 0);
        let timer: NodeJS.Timeout | undefined;
        const ok = await Promise.race([
          new Promise<boolean>((r) => conn.readyWaiters.push(() => r(true))),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now())))),
          new Promise<boolean>((r) => sock.once('close', () => r(false))),
        ]);
        clearTimeout(timer);
        if (ok) {
          conn.setClock();
          return conn;
        }
        conn.close();
      }
      if (Date.now() > deadline) throw new Error(`the guest agent did not become ready within ${Math.round(timeoutMs / 1000)} s`);
      if (!alive()) throw new Error('the VM exited before its agent became ready');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  /** True when the agent runs terminal execs (protocol 2). */
  get terminals(): boolean {
    return this.version >= 2;
  }

  close(): void {
    this.sock.destroy();
  }

  private send(type: string, id: number, payload: Buffer = Buffer.alloc(0)): void {
    if (this.closed) return;
    for (let off = 0; off === 0 || off < payload.length; off += MAX_FRAME) {
      const part = payload.subarray(off, off + MAX_FRAME);
      const h = Buffer.alloc(9);
      h.write(type, 0, 'latin1');
      h.writeUInt32BE(id, 1);
      h.writeUInt32BE(part.length, 5);
      this.sock.write(Buffer.concat([h, part]));
      if (payload.length === 0) break;
    }
  }

  /**
   * Start a program in the guest (as uid 1000, in its own cgroup with these limits; a one-shot
   * one takes everything it started with it when it exits; with `tty`, on a new pseudo-terminal).
   */
  exec(
    argv: string[],
    env: Record<string, string>,
    cwd: string,
    limits: { pids?: number | undefined; memoryBytes?: number | undefined; cpus?: number | undefined },
    oneShot = false,
    tty?: { rows: number; cols: number },
  ): AgentExec {
    const id = this.next++;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let done!: (e: AgentExit) => void;
    let fail!: (e: Error) => void;
    const exit = new Promise<AgentExit>((res, rej) => {
      done = res;
      fail = rej;
    });
    // Flow control: stdin goes out while the agent has room for it (WINDOW unacknowledged); a
    // write completes once all of it went out, so a program that does not read holds its writer.
    const windowed = this.version >= 2;
    let inflight = 0;
    let pending: { buf: Buffer; cb: () => void } | undefined;
    const pump = (): void => {
      while (pending && inflight < WINDOW) {
        const n = Math.min(STDIN_CHUNK, WINDOW - inflight, pending.buf.length);
        this.send('I', id, pending.buf.subarray(0, n));
        inflight += n;
        pending.buf = pending.buf.subarray(n);
        if (pending.buf.length === 0) {
          const { cb } = pending;
          pending = undefined;
          cb();
        }
      }
    };
    const acked = (n: number): void => {
      inflight = Math.max(0, inflight - n);
      pump();
    };
    // Once the program is gone, what it did not take is dropped.
    const drop = (): void => {
      const p = pending;
      pending = undefined;
      p?.cb();
    };
    void exit.finally(drop).catch(() => undefined);
    this.execs.set(id, { stdout, stderr, done, fail, acked });
    const envs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    const fields = [
      ...(tty ? [String(Math.round(tty.rows)), String(Math.round(tty.cols))] : []),
      cwd,
      String(limits.pids ?? 0),
      String(limits.memoryBytes ?? 0),
      String(limits.cpus ? Math.round(limits.cpus * 100_000) : 0),
      String(argv.length),
      ...argv,
      String(envs.length),
      ...envs,
    ];
    const payload = Buffer.from(fields.map((f) => `${f}\0`).join(''));
    if (payload.length > MAX_FRAME) {
      this.execs.delete(id);
      fail(new Error('the command and its environment are too large (1 MiB at most)'));
    } else this.send(tty ? 'T' : oneShot ? 'Y' : 'X', id, payload);
    const stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (!this.execs.has(id)) return cb();
        if (!windowed) {
          for (let off = 0; off < chunk.length; off += STDIN_CHUNK) this.send('I', id, chunk.subarray(off, off + STDIN_CHUNK));
          return cb();
        }
        pending = { buf: chunk, cb: () => cb() };
        pump();
      },
      final: (cb) => {
        this.send('E', id);
        cb();
      },
    });
    return {
      stdin,
      stdout,
      stderr,
      exit,
      signal: (signo) => this.send('S', id, Buffer.from([signo])),
      kill: () => this.send('K', id),
      abandon: () => this.end(id),
      resize: (rows, cols) => this.send('W', id, Buffer.from(`${Math.round(rows)} ${Math.round(cols)}`)),
    };
  }

  /** Give the guest the host's wall clock (the VM has no RTC; older agents ignore the frame). */
  private setClock(): void {
    const ms = Date.now();
    this.send('C', 0, Buffer.from(`${Math.floor(ms / 1000)} ${(ms % 1000) * 1_000_000}`));
  }

  /** Signal every process in the guest but the agent. */
  signalAll(signo: number): void {
    this.send('A', 0, Buffer.from([signo]));
  }

  /** New sandbox-wide limits (the guest cgroup all execs are in). */
  setLimits(memoryBytes: number, pids: number): void {
    this.send('U', 0, Buffer.from(`${memoryBytes} ${pids}`));
  }

  /**
   * What runs in the guest now (undefined if the VM went away first), as its own kernel sees it:
   * the client side of the agent's 'Q' message. No host process table shows a guest's processes;
   * this is the one view of them (the test suites read it to prove limits and clean-up inside).
   * A guest that does not answer within `timeoutMs` is an error, not an empty guest.
   */
  usage(timeoutMs = 30_000): Promise<GuestUsage | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.queries.delete(id);
        reject(new Error(`the guest agent did not say what runs in the guest within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.queries.set(id, (u) => {
        clearTimeout(timer);
        resolve(u);
      });
      this.send('Q', id);
    });
  }

  /** Ask the agent to power the VM off. */
  halt(): void {
    this.send('H', 0);
  }

  /**
   * An exec's reader is slow (its output stream is full): stop reading the VM's socket until it
   * caught up, so the guest's output waits in the guest rather than in the daemon's memory.
   */
  private hold(s: PassThrough): void {
    if (this.held++ === 0) this.sock.pause();
    const go = (): void => {
      s.off('drain', go);
      s.off('close', go);
      if (--this.held === 0) this.sock.resume();
    };
    s.on('drain', go);
    s.on('close', go);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    while (this.buf.length >= 9) {
      const len = this.buf.readUInt32BE(5);
      if (this.buf.length < 9 + len) break;
      const type = String.fromCharCode(this.buf[0] ?? 0);
      const id = this.buf.readUInt32BE(1);
      const payload = this.buf.subarray(9, 9 + len);
      this.buf = this.buf.subarray(9 + len);
      const x = this.execs.get(id);
      switch (type) {
        case 'R':
          this.version = Number(payload.toString()) || 1;
          this.ready = true;
          for (const w of this.readyWaiters.splice(0)) w();
          break;
        case 'O':
          if (x && !x.stdout.write(Buffer.from(payload))) this.hold(x.stdout);
          break;
        case 'e':
          if (x && !x.stderr.write(Buffer.from(payload))) this.hold(x.stderr);
          break;
        case 'a':
          if (payload.length === 4) x?.acked(payload.readUInt32BE(0));
          break;
        case 'x': {
          if (!x) break;
          this.execs.delete(id);
          const [kind, n, oom, cpu, mem] = payload.toString().split(' ');
          x.stdout.end();
          x.stderr.end();
          x.done({
            exitCode: kind === 'exit' ? Number(n) : null,
            signal: kind === 'signal' ? signalName(Number(n)) : null,
            oomKilled: Number(oom) > 0,
            cpuMs: Number(cpu) || 0,
            memoryBytes: Number(mem) || 0,
          });
          break;
        }
        case 'q':
          this.queries.get(id)?.(parseUsage(payload));
          this.queries.delete(id);
          break;
        case 'F':
          if (!x) break;
          this.execs.delete(id);
          x.stdout.end();
          x.stderr.end();
          x.fail(new Error(`the guest agent could not start the program: ${payload.toString()}`));
          break;
        default:
          break;
      }
    }
  }

  /** An exec the guest will not report the end of (the VM went away, or did not answer a kill) ends as killed. */
  private end(id: number): void {
    const x = this.execs.get(id);
    if (!x) return;
    this.execs.delete(id);
    x.stdout.end();
    x.stderr.end();
    x.done({ exitCode: null, signal: 'SIGKILL', oomKilled: false, cpuMs: 0, memoryBytes: 0 });
  }

  private onClose(): void {
    this.closed = true;
    // The VM went away under its execs: they end as killed.
    for (const id of [...this.execs.keys()]) this.end(id);
    for (const q of this.queries.values()) q(undefined);
    this.queries.clear();
    if (!this.ready) for (const w of this.readyWaiters.splice(0)) void w;
  }
}

/** "current peak memory\n" then per process "pid uid len\n" and len bytes of NUL-separated argv. */
function parseUsage(p: Buffer): GuestUsage {
  let nl = p.indexOf(10);
  const [cur, peak, mem] = p.subarray(0, nl).toString().split(' ').map(Number);
  const processes: GuestUsage['processes'] = [];
  for (let off = nl + 1; off < p.length;) {
    nl = p.indexOf(10, off);
    if (nl < 0) break;
    const [pid, uid, len] = p.subarray(off, nl).toString().split(' ').map(Number);
    const argv = p
      .subarray(nl + 1, nl + 1 + (len ?? 0))
      .toString()
      .split('\0');
    if (argv.at(-1) === '') argv.pop();
    processes.push({ pid: pid ?? 0, uid: uid ?? 0, argv });
    off = nl + 1 + (len ?? 0);
  }
  return { pidsCurrent: cur ?? 0, pidsPeak: peak ?? 0, memoryBytes: mem ?? 0, processes };
}
