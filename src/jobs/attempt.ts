/**
 * One attempt of a run: a fresh sandbox (from the warm pool when its shape is the default one),
 * the inputs placed in its working directory (archives unpacked by `tar` inside the sandbox, so no
 * untrusted archive is read by the daemon), the command with its output to the attempt's log, and
 * the artifacts collected whatever the outcome (a run killed by its timeout still gives what it
 * wrote). The sandbox is the caller's to destroy (`attempt.sandbox`): after the attempt's result
 * is recorded, so the user does not wait for the clean-up. An attempt with no inputs and no
 * artifacts runs its command as a one-shot run does instead (same isolation, limits, log and
 * outcome; a sandbox whose life is the command's), which starts and ends faster.
 */
import { background } from '../telemetry/trace.js';
import { posix } from 'node:path';
import type { Engine } from '../engine/engine.js';
import { ownerOf } from '../engine/owner.js';
import { createSandboxSchema } from '../engine/schemas.js';
import type { ExecResult, Verdict } from '../engine/schemas.js';
import { RealmError, errorMessage } from '../util/errors.js';
import type { JobBlobs } from './blobs.js';
import type { LogWriter } from './logs.js';
import type { ArtifactRecord, AttemptRecord, JobRunRecord } from './records.js';
import { DEFAULT_WORKING_DIR, inWorkingDir } from './spec.js';

/** Most bytes of one artifact (it passes through the daemon's memory once). */
export const MAX_ARTIFACT_BYTES = 256 * 1024 ** 2;
/** Most output one attempt logs; past it the attempt ends with verdict output-limit. */
export const MAX_LOG_BYTES = 64 * 1024 ** 2;

export interface AttemptContext {
  engine: Engine;
  blobs: JobBlobs;
  log: LogWriter;
  /** Aborted when the run is cancelled (or the daemon stops). */
  signal: AbortSignal;
  /** Told the sandbox's id as soon as it exists, so it is in the record before anything runs. */
  onSandbox(id: string): Promise<void>;
}

const say = (log: LogWriter, text: string): void => log.write(Buffer.from(`realm: ${text}\n`));

/** Run `attempt` of `run` to its end; the record is filled in (never throws for the run's own failures). */
export function runAttempt(run: JobRunRecord, attempt: AttemptRecord, ctx: AttemptContext): Promise<void> {
  // A trace of its own: the queue starts it, not the request that submitted the job.
  return background(
    'job.attempt',
    { 'realm.job.id': run.job, 'realm.job.run.id': run.id, 'realm.job.attempt': attempt.n, 'realm.driver': run.spec.run.driver },
    async (span) => {
      await attemptToEnd(run, attempt, ctx);
      // Set on the record by the attempt; the span tells the same.
      span.set({ 'realm.verdict': attempt.verdict, 'process.exit.code': attempt.exitCode ?? undefined });
    },
  );
}

async function attemptToEnd(run: JobRunRecord, attempt: AttemptRecord, ctx: AttemptContext): Promise<void> {
  const { engine, log } = ctx;
  const spec = run.spec;
  const wd = spec.run.working_dir ?? DEFAULT_WORKING_DIR;
  let sandbox: string | undefined;
  let result: ExecResult | undefined;
  try {
    const image = spec.run.language ? engine.language(spec.run.language).image : (spec.run.image ?? 'host');
    const opts = createSandboxSchema.parse({
      image,
      ...(spec.run.driver ? { driver: spec.run.driver } : {}),
      memory: spec.run.memory,
      cpus: spec.run.cpus,
      pids: spec.run.pids,
      disk: spec.run.disk,
      network: spec.run.network,
      allow: spec.run.allow,
      deny: spec.run.deny,
      env: spec.run.env,
      // Outlives the attempt's timeout by enough to collect the artifacts, then the reaper takes it.
      ttl: spec.run.timeout + 600_000,
    });
    if (oneShot(run)) {
      // Nothing to place before the command nor to collect after it: a one-shot sandbox, with the
      // same image, limits, environment and network, whose life is the command's (no sandbox of
      // the store to make, enter and destroy). A daemon that dies meanwhile takes it along: its
      // next start removes what no record owns before any job runs again.
      ctx.signal.throwIfAborted();
      result = await engine.command(
        {
          driver: spec.run.driver,
          image,
          command: typeof spec.run.command === 'string' ? ['/bin/sh', '-c', spec.run.command] : spec.run.command,
          env: opts.env,
          cwd: wd,
          memory: opts.memory,
          pids: opts.pids,
          cpus: opts.cpus,
          disk: opts.disk,
          tmp: opts.tmp,
          network: opts.network,
          timeout: spec.run.timeout,
          output: MAX_LOG_BYTES,
        },
        (_stream, chunk) => log.write(chunk),
        ctx.signal,
      );
      recordResult(attempt, result, log);
      return ended(attempt, result, ctx);
    }
    // A sandbox of the store's (from the warm pool when its shape is a default one), so a daemon
    // that dies mid-attempt finds it and destroys it before the attempt runs again. The label,
    // which no API caller may set or remove, says whose it is, and ties its execs to the daemon's
    // life: a daemon killed mid-attempt takes the sandbox's processes with it (exec.ts).
    const rec = await engine.createSandbox({ ...opts, labels: { 'realm.job-run': run.id } }, false, run.owner);
    sandbox = rec.id;
    attempt.sandbox = rec.id;
    await ctx.onSandbox(rec.id);
    ctx.signal.throwIfAborted();
    if (wd !== DEFAULT_WORKING_DIR) await engine.files.mkdir(rec.id, wd, true);
    for (const input of run.inputs) {
      const data = await ctx.blobs.read(input.sha256, ownerOf(run));
      const dest = inWorkingDir(spec, input.dest);
      if (!input.unpack) {
        await engine.files.write(rec.id, dest, data, { mode: input.mode, parents: true });
        say(log, `input ${input.from} → ${dest}`);
        continue;
      }
      const archive = `/tmp/.realm-input-${input.sha256.slice(0, 16)}`;
      await engine.files.write(rec.id, archive, data, { mode: 0o600, parents: true });
      const unpack = await engine.exec(rec.id, {
        command: ['/bin/sh', '-c', 'mkdir -p "$1" && tar -xf "$2" -C "$1"; s=$?; rm -f "$2"; exit $s', 'unpack', dest, archive],
        env: {},
        cwd: '/',
        timeout: 600_000,
        output: 64 * 1024,
      });
      if (unpack.verdict !== 'ok')
        throw new RealmError(
          'INVALID_REQUEST',
          `input ${input.from} could not be unpacked into ${dest} (tar in the sandbox's image said: ${(unpack.stderr || unpack.stdout).trim().slice(0, 500) || unpack.verdict})`,
        );
      say(log, `input ${input.from} unpacked into ${dest}`);
    }
    result = await engine.exec(
      rec.id,
      {
        command: spec.run.command,
        env: {},
        cwd: wd,
        timeout: spec.run.timeout,
        output: MAX_LOG_BYTES,
      },
      (_stream, chunk) => log.write(chunk),
      ctx.signal,
    );
    recordResult(attempt, result, log);
  } catch (e) {
    attempt.error = ctx.signal.aborted ? 'cancelled' : errorMessage(e);
    say(log, attempt.error);
  }
  if (sandbox && !ctx.signal.aborted) {
    attempt.artifacts = await collect(run, sandbox, attempt, result?.verdict ?? 'runtime-error', ctx).catch((e: unknown) => {
      say(log, `artifacts not collected: ${errorMessage(e)}`);
      return [];
    });
  }
  ended(attempt, result, ctx);
}

/** Whether an attempt of `run` can go to a one-shot sandbox: nothing in, nothing out, nothing a sandbox of the store alone gives. */
function oneShot(run: JobRunRecord): boolean {
  const r = run.spec.run;
  return (
    run.inputs.length === 0 &&
    run.spec.artifacts.length === 0 &&
    (r.working_dir ?? DEFAULT_WORKING_DIR) === DEFAULT_WORKING_DIR &&
    r.allow.length === 0 &&
    // A wasm sandbox's command is a module; its one-shot runs are languages' only.
    r.driver !== 'wasm'
  );
}

function recordResult(attempt: AttemptRecord, result: ExecResult, log: LogWriter): void {
  Object.assign(attempt, {
    exitCode: result.exitCode,
    signal: result.signal,
    verdict: result.verdict,
    wallMs: result.wallMs,
    cpuMs: result.cpuMs,
    memoryBytes: result.memoryBytes,
  });
  const how =
    result.verdict === 'ok'
      ? `exit 0`
      : `${result.verdict}${result.exitCode !== null ? ` (exit ${result.exitCode})` : result.signal ? ` (${result.signal})` : ''}`;
  say(log, `command ended: ${how} after ${result.wallMs} ms`);
}

/** The attempt's end, from its command's result (none: it failed before or without one). */
function ended(attempt: AttemptRecord, result: ExecResult | undefined, ctx: AttemptContext): void {
  attempt.state = ctx.signal.aborted ? 'cancelled' : result?.verdict === 'ok' ? 'succeeded' : 'failed';
  attempt.endedAt = Date.now();
  attempt.logBytes = ctx.log.bytes;
}

/** Each artifact the spec names, from the sandbox into the blob store; a missing one is logged, not fatal. */
async function collect(
  run: JobRunRecord,
  sandbox: string,
  attempt: AttemptRecord,
  outcome: Verdict,
  ctx: AttemptContext,
): Promise<ArtifactRecord[]> {
  const out: ArtifactRecord[] = [];
  for (const a of run.spec.artifacts) {
    const path = inWorkingDir(run.spec, a.path);
    try {
      const st = await ctx.engine.files.stat(sandbox, path);
      if (st.type !== 'file' && st.type !== 'dir')
        throw new RealmError('FILE_INVALID', `${path} is a ${st.type}, not a file or directory`);
      if (st.type === 'file' && st.size > MAX_ARTIFACT_BYTES)
        throw new RealmError('FILE_TOO_LARGE', `${path} is ${st.size} bytes; artifacts are at most ${MAX_ARTIFACT_BYTES}`);
      const data =
        st.type === 'file' ? await ctx.engine.files.read(sandbox, path) : await ctx.engine.files.download(sandbox, path);
      const { sha256, size } = await ctx.blobs.put(data, ownerOf(run), `job-run:${run.id}`);
      out.push({
        name: a.name,
        path,
        sha256,
        size,
        kind: st.type === 'file' ? 'file' : 'tar',
        mode: parseInt(st.mode, 8),
        outcome,
      });
      say(
        ctx.log,
        `artifact ${a.name} (${posix.relative(run.spec.run.working_dir ?? DEFAULT_WORKING_DIR, path)}, ${size} bytes, sha256:${sha256}) kept (attempt ${attempt.n}: ${outcome})`,
      );
    } catch (e) {
      say(ctx.log, `artifact ${a.name} (${path}) not collected: ${errorMessage(e)}`);
    }
  }
  return out;
}
