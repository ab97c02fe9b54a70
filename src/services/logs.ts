/** A service's output: its replicas' stdout and stderr and realm's own notes, kept in memory (the last MAX_BYTES) and followed live. */

/** What a service keeps of its output. */
const MAX_BYTES = 1024 * 1024;

export interface LogEntry {
  /** The replica's id. */
  replica: string;
  stream: 'stdout' | 'stderr' | 'realm';
  text: string;
  at: string;
}

export class ServiceLogs {
  private readonly entries: LogEntry[] = [];
  private bytes = 0;
  private readonly followers = new Set<(e: LogEntry | null) => void>();

  add(replica: string, stream: LogEntry['stream'], text: string): void {
    const e: LogEntry = { replica, stream, text, at: new Date().toISOString() };
    this.entries.push(e);
    this.bytes += text.length;
    while (this.bytes > MAX_BYTES && this.entries.length > 1) this.bytes -= this.entries.shift()?.text.length ?? 0;
    for (const f of this.followers) f(e);
  }

  /** What is kept now. */
  snapshot(): LogEntry[] {
    return [...this.entries];
  }

  /** Call `sink` with each new entry, and with null when the service goes; returns the stop. */
  follow(sink: (e: LogEntry | null) => void): () => void {
    this.followers.add(sink);
    return () => this.followers.delete(sink);
  }

  close(): void {
    for (const f of this.followers) f(null);
    this.followers.clear();
  }
}
