/**
 * The daemon's own process figures, cheap to read at scrape time: resident memory, cpu seconds,
 * open descriptors, start time. Not prom-client's default metrics: their event-loop monitor
 * costs a noticeable share of a core on a busy daemon.
 */
import { readdirSync } from 'node:fs';

const startTimeSeconds = Math.round(Date.now() / 1000 - process.uptime());

export interface ProcessFigures {
  residentBytes: number;
  cpuSeconds: number;
  openFds: number;
  startTimeSeconds: number;
}

export function processFigures(): ProcessFigures {
  const cpu = process.cpuUsage();
  let openFds = 0;
  try {
    openFds = readdirSync('/proc/self/fd').length;
  } catch {
    /* no /proc: left at 0 */
  }
  return {
    residentBytes: process.memoryUsage.rss(),
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    openFds,
    startTimeSeconds,
  };
}
