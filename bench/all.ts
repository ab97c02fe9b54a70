/**
 * Every benchmark in sequence, then one table of targets with PASS/FAIL.
 * `node dist/bench/all.js` (or `npm run bench` after a build). Always exits 0.
 */
import Table from 'cli-table3';
import { main as createExec } from './create-exec.js';
import { main as idleMemory } from './idle-memory.js';
import { main as runPython } from './run-python.js';
import { main as throughput } from './throughput.js';
import { main as metricsOverhead } from './metrics-overhead.js';
import { main as otelOverhead } from './otel-overhead.js';
import { main as api } from './api.js';
import { main as cliStart } from './cli-start.js';
import { main as gvisorStart } from './gvisor-start.js';
import { main as gvisorNet } from './gvisor-net.js';
import { main as microvmBoot } from './microvm-boot.js';
import { main as microvmNet } from './microvm-net.js';
import { main as outputMemory } from './output-memory.js';
import { main as wasmRun } from './wasm-run.js';
import { main as gateway } from './gateway.js';
import { main as gatewayComponent } from './gateway-component.js';
import { main as services } from './services.js';
import { main as preview } from './preview.js';
import { main as blobs } from './blobs.js';
import { main as jobs } from './jobs.js';
import { main as cluster } from './cluster.js';
import { main as uiLoad } from './ui-load.js';
import { fmt, passed, runIfMain, type Target } from './lib.js';

const BENCHES: [string, () => Promise<Target[]>][] = [
  ['run-python', () => runPython()],
  ['run-python cold', () => runPython({ n: 60, cold: true })],
  ['create-exec', () => createExec()],
  ['idle-memory', () => idleMemory()],
  ['throughput', () => throughput()],
  ['metrics-overhead', () => metricsOverhead()],
  ['otel-overhead', () => otelOverhead()],
  ['api', () => api()],
  ['cli-start', () => cliStart()],
  ['output-memory', () => outputMemory()],
  ['wasm-run', () => wasmRun()],
  ['gateway', () => gateway()],
  ['gateway-component', () => gatewayComponent()],
  ['services', () => services()],
  ['preview', () => preview()],
  ['blobs', () => blobs()],
  ['jobs', () => jobs()],
  ['cluster', () => cluster()],
  ['ui-load', () => uiLoad()],
  ['gvisor-start', () => gvisorStart()],
  ['gvisor-net', () => gvisorNet()],
  ['microvm-boot', () => microvmBoot()],
  ['microvm-net', () => microvmNet()],
];

export async function main(): Promise<Target[]> {
  const all: Target[] = [];
  const failed: string[] = [];
  const t0 = performance.now();
  for (const [name, bench] of BENCHES) {
    const started = performance.now();
    try {
      all.push(...(await bench()));
    } catch (e) {
      console.error(e);
      failed.push(name);
    }
    console.log(`(${name} took ${fmt((performance.now() - started) / 1000, 1)} s)\n`);
  }
  const table = new Table({ head: ['benchmark', 'target', 'measured', 'limit', 'result'], style: { head: [], border: [] } });
  for (const t of all)
    table.push([t.bench, t.name, `${fmt(t.value)}${t.unit}`, `${t.op} ${fmt(t.limit)}${t.unit}`, passed(t) ? 'PASS' : 'FAIL']);
  for (const name of failed) table.push([name, 'benchmark completed', 'error', '', 'FAIL']);
  console.log(`== summary (${fmt((performance.now() - t0) / 1000, 1)} s)`);
  console.log(table.toString());
  const fails = all.filter((t) => !passed(t)).length + failed.length;
  console.log(`${all.length + failed.length - fails} PASS, ${fails} FAIL`);
  return all;
}

runIfMain(import.meta.url, main);
