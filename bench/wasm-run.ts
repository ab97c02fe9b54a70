/**
 * One-shot WebAssembly as a user sees it: a client process of its own posts a small C program
 * compiled to wasm (`clang --target=wasm32-wasi`, printing a line) as `{language: 'wasm', files:
 * [main.wasm]}` to `/v1/runs` on a kept-alive connection to a daemon in another process (`realm
 * serve`, unix socket), against the same program compiled natively (`gcc -O2`) and run through the
 * namespace driver: an exec of the binary in a running namespace sandbox (its fastest native path:
 * no sandbox is built for it, where the wasm run gets a fresh instance in a runner of its own).
 *
 * Interleaved samples ~30 ms apart (a user's runs, or a judge's: each wasm run takes a runner
 * started ahead, and its sandbox and engine start cost ~150 ms of cpu, which a 2-core machine
 * cannot refill at back-to-back speed), ratios of percentiles from the same run (the machine is noisy).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fmt,
  interleave,
  printLatencies,
  progress,
  progressDone,
  report,
  runIfMain,
  socketRequest as call,
  spawnDaemon,
  summarize,
  type Target,
} from './lib.js';

const BENCH = 'wasm-run';
const GAP_MS = 30;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const SOURCE = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n';

function check(
  what: string,
  r: { status: number; text: string },
): { verdict?: string; stdout?: string; exitCode?: number; id?: string } {
  const v = JSON.parse(r.text) as { verdict?: string; stdout?: string; exitCode?: number; id?: string };
  if (r.status >= 300 || (v.stdout !== undefined && v.stdout !== 'hello\n'))
    throw new Error(`${what} failed: ${r.status} ${r.text}`);
  return v;
}

export async function main(opts: { n?: number; warmup?: number } = {}): Promise<Target[]> {
  const n = opts.n ?? 150;
  const warmup = opts.warmup ?? 10;
  console.log(
    `== ${BENCH}: C hello compiled to wasm, posted as a one-shot run (language wasm) to /v1/runs by a client process, vs the same C compiled natively and exec'd in a running namespace sandbox; ${GAP_MS} ms apart; n=${n} each, ${warmup} warm-up rounds`,
  );
  const dir = mkdtempSync(join(tmpdir(), 'realm-bench-wasm-'));
  const d = await spawnDaemon(BENCH);
  try {
    writeFileSync(join(dir, 'hello.c'), SOURCE);
    execFileSync('/usr/bin/clang', ['--target=wasm32-wasi', '-O2', '-o', join(dir, 'hello.wasm'), join(dir, 'hello.c')]);
    execFileSync('/usr/bin/gcc', ['-O2', '-o', join(dir, 'hello'), join(dir, 'hello.c')]);
    const wasm = readFileSync(join(dir, 'hello.wasm'));
    const wasmAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const nativeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const runBody = JSON.stringify({
      language: 'wasm',
      files: [{ name: 'main.wasm', content: wasm.toString('base64'), encoding: 'base64' }],
    });
    const sandbox = check(
      'create',
      await call(d.socket, nativeAgent, 'POST', '/v1/sandboxes', JSON.stringify({ driver: 'namespace' })),
    );
    const id = sandbox.id ?? '';
    check(
      'upload',
      await call(
        d.socket,
        nativeAgent,
        'PUT',
        `/v1/sandboxes/${id}/files?path=/home/user/hello&mode=755`,
        readFileSync(join(dir, 'hello')),
        'application/octet-stream',
      ).then((r) => ({ ...r, text: r.text || '{}' })),
    );
    const execBody = JSON.stringify({ command: ['./hello'] });
    const wall: number[] = [];
    const samples = await interleave(
      [
        {
          name: 'wasm',
          sample: async () => {
            const r = await call(d.socket, wasmAgent, 'POST', '/v1/runs', runBody);
            const v = check('wasm run', r) as { verdict?: string; wallMs?: number };
            if (v.verdict !== 'ok') throw new Error(`wasm run: ${r.text}`);
            wall.push(v.wallMs ?? NaN);
            return r.ms;
          },
          after: () => sleep(GAP_MS),
        },
        {
          name: 'native',
          sample: async () => {
            const r = await call(d.socket, nativeAgent, 'POST', `/v1/sandboxes/${id}/exec`, execBody);
            const v = check('native exec', r);
            if (v.exitCode !== 0) throw new Error(`native exec: ${r.text}`);
            return r.ms;
          },
          after: () => sleep(GAP_MS),
        },
      ],
      n,
      warmup,
      (i) => progress(`${BENCH}: ${i}/${n}`),
    );
    progressDone();
    await call(d.socket, nativeAgent, 'DELETE', `/v1/sandboxes/${id}`, '');
    const w = summarize(samples.get('wasm') ?? []);
    const nat = summarize(samples.get('native') ?? []);
    printLatencies([
      ['wasm one-shot run (ms)', w],
      ['  its wallMs reported by the daemon', summarize(wall)],
      ['native exec, namespace sandbox (ms)', nat],
    ]);
    const ratio50 = w.p50 / nat.p50;
    console.log(`ratio p50 ${fmt(ratio50)}x, p90 ${fmt(w.p90 / nat.p90)}x`);
    const targets: Target[] = [
      { bench: BENCH, name: 'wasm one-shot p50 / native exec p50', value: ratio50, limit: 1.5, op: '<=', unit: 'x' },
    ];
    report(targets);
    return targets;
  } finally {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runIfMain(import.meta.url, main);
