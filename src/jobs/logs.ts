/**
 * One log file per attempt (stdout and stderr interleaved, as a terminal shows them), kept under
 * the data dir after the attempt and its sandbox are gone, bounded by the attempt's output limit
 * (past it the attempt ends with verdict `output-limit`). Readers tail it: what is in the file,
 * then what is written while they listen, until the attempt ends.
 *
 * @example
 * const log = logs.open('run-1a2b', 1); log.write(Buffer.from('hi\n')); log.end();
 * logs.follow('run-1a2b', 1, 0, (c) => out.write(c), () => out.end());
 */
import { EventEmitter } from 'node:events';
import { closeSync, createReadStream, existsSync, mkdirSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export interface LogWriter {
  write(chunk: Buffer): void;
  end(): void;
  readonly bytes: number;
}

export class JobLogs {
  /** Logs being written: readers that follow one hear of each write and of its end. */
  private readonly live = new Map<string, EventEmitter>();

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  file(run: string, attempt: number): string {
    return join(this.dir, run, `${attempt}.log`);
  }

  open(run: string, attempt: number): LogWriter {
    mkdirSync(join(this.dir, run), { recursive: true, mode: 0o700 });
    const key = `${run}/${attempt}`;
    const fd = openSync(this.file(run, attempt), 'w', 0o600);
    const events = new EventEmitter();
    this.live.set(key, events);
    let bytes = 0;
    let open = true;
    return {
      write: (chunk) => {
        if (!open) return;
        writeSync(fd, chunk);
        bytes += chunk.length;
        events.emit('data', chunk);
      },
      end: () => {
        if (!open) return;
        open = false;
        closeSync(fd);
        this.live.delete(key);
        events.emit('end');
      },
      get bytes() {
        return bytes;
      },
    };
  }

  /** Whether an attempt's log is still being written. */
  writing(run: string, attempt: number): boolean {
    return this.live.has(`${run}/${attempt}`);
  }

  /**
   * Read an attempt's log from byte `from`, then (when `follow` and it is still being written)
   * each new chunk until it ends; `done` is called once at the end. Returns a function that stops.
   */
  read(
    run: string,
    attempt: number,
    opts: { from?: number; follow?: boolean },
    onChunk: (c: Buffer) => void,
    done: () => void,
  ): () => void {
    const file = this.file(run, attempt);
    const events = opts.follow ? this.live.get(`${run}/${attempt}`) : undefined;
    let stopped = false;
    const held: Buffer[] = [];
    let replaying = true;
    const stop = (): void => {
      if (stopped) return;
      stopped = true;
      events?.off('data', onLive);
      events?.off('end', onEnd);
      done();
    };
    // Writes during the replay of the file are held, then given in order after it.
    const onLive = (c: Buffer): void => {
      if (replaying) held.push(c);
      else onChunk(c);
    };
    const onEnd = (): void => {
      if (!replaying) stop();
      else held.push(Buffer.alloc(0)); // an empty chunk marks the end
    };
    events?.on('data', onLive);
    events?.once('end', onEnd);
    const size = existsSync(file) ? statSync(file).size : 0;
    const start = Math.min(opts.from ?? 0, size);
    const replay = size > start ? createReadStream(file, { start, end: size - 1 }) : null;
    const finish = (): void => {
      replaying = false;
      for (const c of held.splice(0)) {
        if (c.length === 0) return stop();
        onChunk(c);
      }
      if (!events) stop();
    };
    if (replay) {
      replay.on('data', (c) => {
        if (!stopped) onChunk(c as Buffer);
      });
      replay.once('error', finish);
      replay.once('end', finish);
    } else queueMicrotask(finish);
    return stop;
  }

  remove(run: string): void {
    rmSync(join(this.dir, run), { recursive: true, force: true });
  }
}
