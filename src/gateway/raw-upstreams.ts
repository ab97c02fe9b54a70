/**
 * Idle kept-alive connections to replicas' ports for the gateway's fast lane (fast-lane.ts),
 * by (sandbox, port): a request takes one (the most recently used first) or dials afresh, and
 * gives it back once its response ended cleanly. An idle connection that the server closes, or
 * that brings a byte nobody asked for (a forged response), is dropped at once; one idle past
 * IDLE_MS is closed (under the 5 s keep-alive timeout of most servers, so the lane seldom writes
 * to one the server is closing).
 */
import type { Socket } from 'node:net';

const IDLE_MS = 4_000;
/** Idle connections kept per (sandbox, port). */
const MAX_IDLE = 16;

interface Idle {
  socket: Socket;
  timer: NodeJS.Timeout;
  drop: () => void;
}

export class RawUpstreams {
  private readonly idle = new Map<string, Idle[]>();

  /** An idle connection to `port` of `sandbox`, now the caller's; undefined when none is kept. */
  take(sandbox: string, port: number): Socket | undefined {
    const list = this.idle.get(`${sandbox}:${port}`);
    for (let e = list?.pop(); e; e = list?.pop()) {
      this.detach(e);
      if (!e.socket.destroyed && e.socket.readable && e.socket.writable) return e.socket;
      e.socket.destroy();
    }
    return undefined;
  }

  /** Keep `socket` (its response ended cleanly, nothing read past it) for the next request. */
  give(sandbox: string, port: number, socket: Socket): void {
    const key = `${sandbox}:${port}`;
    let list = this.idle.get(key);
    if (!list) this.idle.set(key, (list = []));
    if (list.length >= MAX_IDLE || socket.destroyed) return void socket.destroy();
    const entry: Idle = {
      socket,
      timer: setTimeout(() => entry.drop(), IDLE_MS),
      drop: () => {
        this.detach(entry);
        const l = this.idle.get(key);
        const i = l?.indexOf(entry) ?? -1;
        if (i >= 0) l?.splice(i, 1);
        if (l?.length === 0) this.idle.delete(key);
        socket.destroy();
      },
    };
    entry.timer.unref();
    socket.on('data', entry.drop).on('end', entry.drop).on('close', entry.drop).on('error', entry.drop);
    socket.resume();
    list.push(entry);
  }

  /** Close every kept connection to the sandbox (its replica went). */
  forget(sandbox: string): void {
    for (const [key, list] of this.idle) if (key.slice(0, key.lastIndexOf(':')) === sandbox) for (const e of [...list]) e.drop();
  }

  close(): void {
    for (const list of [...this.idle.values()]) for (const e of [...list]) e.drop();
    this.idle.clear();
  }

  private detach(e: Idle): void {
    clearTimeout(e.timer);
    e.socket.off('data', e.drop).off('end', e.drop).off('close', e.drop).off('error', e.drop);
  }
}
