/**
 * One feature's cost on one-shot throughput: python print(1) at a concurrency, warm pools on,
 * through a daemon with the feature on against one with it off — both `realm serve` processes of
 * their own, run in interleaved blocks (on, off, off, on, ...) so that load from elsewhere hits
 * both — and each daemon's own CPU per run, read from /proc. Used by metrics-overhead and
 * otel-overhead.
 */
import { readFileSync } from 'node:fs';
import { Client, run } from '@realm/sdk';
import { type DaemonProcess, fmt, interleave, pool, progress, progressDone } from './lib.js';

/** Runs each daemon takes before the measured blocks, twice (pools warm, code paths compiled). */
export const WARMUP_RUNS = 50;
/** Clock ticks per second of /proc/PID/stat (USER_HZ; 100 on Linux). */
const USER_HZ = 100;

/** CPU ms the process used so far (user + system). */
function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) * (1000 / USER_HZ);
}

type Side = 'on' | 'off';

export interface OnOff {
  /** Runs a second. */
  rate: Record<Side, number>;
  /** The daemon's own CPU ms per measured run. */
  cpuPerRun: Record<Side, number>;
  /** Each measured block's wall ms. */
  blocks: Record<Side, number[]>;
  /** How much slower `on` is than `off`, in percent. */
  overheadPct: number;
}

export async function onOffThroughput(
  bench: string,
  daemons: Record<Side, DaemonProcess>,
  o: { blocks: number; perBlock: number; concurrency: number },
): Promise<OnOff> {
  const cpu: Record<Side, number> = { on: 0, off: 0 };
  const samples = await interleave(
    (['on', 'off'] as const).map((name) => {
      const d = daemons[name];
      const client = new Client({ socketPath: d.socket });
      return {
        name,
        sample: async (round: number) => {
          const c0 = cpuMs(d.child.pid as number);
          const ms = await pool(round < 0 ? WARMUP_RUNS : o.perBlock, o.concurrency, async () => {
            const r = await run({ language: 'python', code: 'print(1)' }, client);
            if (r.verdict !== 'ok' || r.stdout !== '1\n') throw new Error(`run failed: ${JSON.stringify(r)}`);
          });
          if (round >= 0) cpu[name] += cpuMs(d.child.pid as number) - c0;
          return ms;
        },
      };
    }),
    o.blocks,
    2,
    (i) => progress(`${bench}: block ${i}/${o.blocks}`),
  ).finally(progressDone);
  const runs = o.perBlock * o.blocks;
  const blocks = { on: samples.get('on') ?? [], off: samples.get('off') ?? [] };
  const rate = { on: runs / (sum(blocks.on) / 1000), off: runs / (sum(blocks.off) / 1000) };
  return {
    rate,
    cpuPerRun: { on: cpu.on / runs, off: cpu.off / runs },
    blocks,
    overheadPct: (rate.off / rate.on - 1) * 100,
  };
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);

/** The figures as lines: `<what> on: …`, `<what> off: …`, per block, and the ratio. */
export function printOnOff(what: string, r: OnOff, onNote = ''): void {
  console.log(`${what} on:  ${fmt(r.rate.on, 1)} runs/s, daemon CPU ${fmt(r.cpuPerRun.on)} ms per run${onNote}`);
  console.log(`${what} off: ${fmt(r.rate.off, 1)} runs/s, daemon CPU ${fmt(r.cpuPerRun.off)} ms per run`);
  const ms = (xs: number[]): string => xs.map((x) => fmt(x, 0)).join(', ');
  console.log(`per block (ms): on ${ms(r.blocks.on)}; off ${ms(r.blocks.off)}`);
  console.log(`ratio on/off: ${fmt((r.rate.on / r.rate.off) * 100, 1)}% (overhead ${fmt(r.overheadPct, 1)}%)`);
}
