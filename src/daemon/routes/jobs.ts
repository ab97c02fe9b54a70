/**
 * Jobs: submit a spec (JSON, or its TOML text as {toml}), list, inspect, follow logs (SSE, or
 * the whole log as text), cancel, fetch artifacts, remove. A job is addressed by its name or one
 * of its runs' ids; a user sees only its own (others' answer JOB_NOT_FOUND).
 */
import { StringDecoder } from 'node:string_decoder';
import type { Context, Hono } from 'hono';
import { streamSSE } from 'hono/streaming';
import { z } from 'zod';
import type { Jobs, JobView, RunView } from '../../jobs/jobs.js';
import { runArtifacts, type JobRunRecord } from '../../jobs/records.js';
import { type JobSpec, parseJobSpec, parseJobToml } from '../../jobs/spec.js';
import { RealmError } from '../../util/errors.js';
import { jsonBody } from '../body.js';
import { principal } from '../principal.js';
import type { Nodes } from '../../cluster/types.js';
import { fromNodeThatRanIt } from '../cluster-jobs.js';
import type { jobResponse, jobRunResponse } from '../responses-jobs.js';

/**
 * A spec as JSON, or `{toml: "…", inputs?: […]}`: the same spec as a TOML document (errors name
 * its lines), with inputs added by the client (files it uploaded, other jobs' artifacts).
 */
export const submitJobSchema = z.union([
  z
    .object({ toml: z.string().max(1024 * 1024), inputs: z.array(z.record(z.string(), z.unknown())).max(256).optional() })
    .strict(),
  z.record(z.string(), z.unknown()),
]);

/** The longest a client may wait in one `GET /v1/jobs/:ref/wait` (it asks again after). */
const MAX_WAIT_S = 300;

/** `?timeout=SECONDS` of a wait (default 30; 0 answers at once). */
function waitTimeout(text: string | undefined, param = 'timeout'): number {
  if (text === undefined) return 30_000;
  const s = /^\d+(\.\d+)?$/.test(text) ? Number(text) : NaN;
  if (!(s <= MAX_WAIT_S))
    throw new RealmError('INVALID_REQUEST', `${param}=${text}: write the seconds to wait, 0 to ${MAX_WAIT_S} (e.g. ${param}=30)`);
  return Math.round(s * 1000);
}

const time = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function runView(r: RunView): z.output<typeof jobRunResponse> {
  return {
    id: r.id,
    job: r.job,
    n: r.n,
    state: r.state,
    position: r.position ?? null,
    reason: r.reason ?? null,
    createdAt: time(r.createdAt) ?? '',
    startedAt: time(r.startedAt),
    endedAt: time(r.endedAt),
    firing: time(r.firing),
    nextAttemptAt: time(r.nextAttemptAt),
    logDropped: time(r.logDroppedAt),
    inputs: r.inputs.map((i) => ({ dest: i.dest, sha256: i.sha256, from: i.from, unpack: i.unpack })),
    attempts: r.attempts.map((a) => ({
      n: a.n,
      state: a.state,
      node: a.node ?? null,
      startedAt: time(a.startedAt) ?? '',
      endedAt: time(a.endedAt),
      exitCode: a.exitCode ?? null,
      signal: a.signal ?? null,
      verdict: a.verdict ?? null,
      error: a.error ?? null,
      wallMs: a.wallMs ?? null,
      cpuMs: a.cpuMs ?? null,
      memoryBytes: a.memoryBytes ?? null,
      logBytes: a.logBytes,
    })),
    artifacts: runArtifacts(r).map((a) => ({
      name: a.name,
      path: a.path,
      sha256: a.sha256,
      size: a.size,
      kind: a.kind,
      outcome: a.outcome,
    })),
  };
}

export function jobView(v: JobView): z.output<typeof jobResponse> {
  const { job } = v;
  return {
    name: job.name,
    type: job.spec.type,
    spec: job.spec,
    createdAt: time(job.createdAt) ?? '',
    updatedAt: time(job.updatedAt) ?? '',
    schedule: job.spec.schedule ? { cron: job.spec.schedule.cron, timezone: job.spec.schedule.timezone } : null,
    events: job.events.map((e) => ({ at: time(e.at) ?? '', type: e.type, reason: e.reason, run: e.run ?? null })),
    runs: v.runs.map(runView),
  };
}

const ref = (c: Context): string => c.req.param('ref') ?? '';

/** A TOML spec with the client's extra inputs after its own (checked as the spec's are). */
function withInputs(spec: JobSpec, extra: unknown): JobSpec {
  if (!Array.isArray(extra) || !extra.length) return spec;
  return parseJobSpec({ ...spec, inputs: [...spec.inputs, ...(extra as unknown[])] });
}

export function jobRoutes(app: Hono, jobs: Jobs, nodes: Nodes): void {
  app.post('/v1/jobs', async (c) => {
    // ?wait=SECONDS: answered once the run made ended (or at the timeout), in one request.
    const asked = c.req.query('wait');
    const wait = asked === undefined ? undefined : waitTimeout(asked, 'wait');
    const body = submitJobSchema.parse(await jsonBody(c));
    const spec = typeof body.toml === 'string' ? withInputs(parseJobToml(body.toml), body.inputs) : parseJobSpec(body);
    const who = principal(c).id;
    const { job, run } = await jobs.submit(spec, who);
    if (run && wait) await jobs.waitEnded(run.id, who, wait);
    return c.json(jobView(await jobs.get(job.name, who)), 201);
  });
  app.get('/v1/jobs', async (c) => c.json({ jobs: (await jobs.list(principal(c).id)).map(jobView) }));
  app.get('/v1/jobs/:ref', async (c) => c.json(jobView(await jobs.get(ref(c), principal(c).id))));
  app.delete('/v1/jobs/:ref', async (c) => {
    await jobs.remove(ref(c), principal(c).id);
    return c.body(null, 204);
  });
  app.get('/v1/jobs/:ref/wait', async (c) => {
    const timeout = waitTimeout(c.req.query('timeout'));
    return c.json(runView(await jobs.waitEnded(ref(c), principal(c).id, timeout)));
  });
  app.post('/v1/jobs/:ref/cancel', async (c) => c.json({ runs: (await jobs.cancel(ref(c), principal(c).id)).map(runView) }));
  app.get('/v1/jobs/:ref/artifacts', async (c) => {
    const run = await jobs.run(ref(c), principal(c).id);
    return c.json(runView(run).artifacts);
  });
  app.get('/v1/jobs/:ref/artifacts/:name', async (c) => {
    const who = principal(c).id;
    const run = await jobs.run(ref(c), who);
    const name = c.req.param('name');
    const there = await fromNodeThatRanIt(c, nodes, run.attempts.at(-1)?.node, `run ${run.id}'s artifact ${name}`);
    if (there) return there;
    const art = runArtifacts(run).find((a) => a.name === name);
    if (!art)
      throw new RealmError(
        'JOB_NOT_FOUND',
        `run ${run.id} has no artifact ${name} (it has: ${
          runArtifacts(run)
            .map((a) => a.name)
            .join(', ') || 'none'
        })`,
      );
    const data = await jobs.artifact(art, run);
    c.header('Content-Disposition', `attachment; filename="${art.kind === 'tar' ? `${art.name}.tar` : art.name}"`);
    c.header('X-Realm-Artifact-Outcome', art.outcome);
    c.header('X-Realm-Sha256', art.sha256);
    return c.body(new Uint8Array(data), 200, {
      'Content-Type': art.kind === 'tar' ? 'application/x-tar' : 'application/octet-stream',
    });
  });
  // Registered before /logs: hono matches in order, and both share the prefix.
  app.get('/v1/jobs/:ref/logs/stream', async (c) => {
    const { run, attempt, node } = await logTarget(c, jobs);
    const there = await fromNodeThatRanIt(c, nodes, node, `the log of run ${run.id} attempt ${attempt}`);
    if (there) return there;
    const follow = c.req.query('follow') === '1' || c.req.query('follow') === 'true';
    return streamSSE(c, async (stream) => {
      await new Promise<void>((resolve) => {
        let queue = Promise.resolve();
        const text = new StringDecoder('utf8'); // never a character split across events
        const stop = jobs.logs.read(
          run.id,
          attempt,
          { follow },
          (chunk) => {
            queue = queue.then(() => stream.writeSSE({ event: 'log', data: JSON.stringify({ data: text.write(chunk) }) }));
          },
          () => {
            void queue
              .then(() => stream.writeSSE({ event: 'end', data: JSON.stringify({ run: run.id, attempt }) }))
              .finally(resolve);
          },
        );
        stream.onAbort(stop);
      });
    });
  });
  app.get('/v1/jobs/:ref/logs', async (c) => {
    const { run, attempt, node } = await logTarget(c, jobs);
    const there = await fromNodeThatRanIt(c, nodes, node, `the log of run ${run.id} attempt ${attempt}`);
    if (there) return there;
    const chunks: Buffer[] = [];
    await new Promise<void>((resolve) => jobs.logs.read(run.id, attempt, { follow: false }, (b) => chunks.push(b), resolve));
    return c.body(new Uint8Array(Buffer.concat(chunks)), 200, { 'Content-Type': 'text/plain; charset=utf-8' });
  });
}

/** The run and attempt a log request means: the latest run of a job, or a run id; its last attempt unless ?attempt=N. */
async function logTarget(c: Context, jobs: Jobs): Promise<{ run: JobRunRecord; attempt: number; node?: string | undefined }> {
  const run = await jobs.run(ref(c), principal(c).id);
  const asked = c.req.query('attempt');
  const attempt = asked === undefined ? run.attempts.at(-1)?.n : Number(asked);
  if (attempt === undefined || !run.attempts.some((a) => a.n === attempt))
    throw new RealmError(
      'JOB_NOT_FOUND',
      `run ${run.id} has no attempt ${asked ?? ''} yet${run.state === 'queued' ? ' (it is queued)' : ''}`.replace('  ', ' '),
    );
  return { run, attempt, node: run.attempts.find((a) => a.n === attempt)?.node };
}
