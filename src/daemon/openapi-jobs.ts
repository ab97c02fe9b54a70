/** The jobs routes in the OpenAPI document (see openapi.ts). */
import type { Op } from './openapi.js';
import { submitJobSchema } from './routes/jobs.js';

export const JOB_ROUTES: Record<string, Record<string, Op>> = {
  '/v1/jobs': {
    get: { id: 'listJobs', res: 'JobList', summary: "The caller's jobs, each with its runs" },
    post: {
      id: 'submitJob',
      body: submitJobSchema,
      res: 'Job',
      ok: 201,
      summary:
        'Submit a job spec (JSON, or {toml: "<the spec as TOML>"}): a batch job gets a run, queued now; a cron job is scheduled. A bad spec is refused whole (JOB_SPEC_INVALID names the key and, for TOML, its line). With ?wait=SECONDS (at most 300) the answer comes once that run has ended, or at the timeout with the run as it is then: submit and wait in one request',
      query: ['wait'],
    },
  },
  '/v1/jobs/{ref}': {
    get: {
      id: 'getJob',
      res: 'Job',
      summary: 'A job by name, or the job of a run id, with its runs and events',
      params: ['ref'],
    },
    delete: {
      id: 'removeJob',
      summary: 'Remove a job (every run, log and artifact hold) or one ended run by its id; refused while a run is active',
      params: ['ref'],
      ok: 204,
    },
  },
  '/v1/jobs/{ref}/wait': {
    get: {
      id: 'waitJobRun',
      res: 'JobRun',
      summary:
        'A run (by id; the latest run of a job by name) once it has ended, or as it is after ?timeout=SECONDS (default 30, at most 300; ask again): a client waits for a run without polling',
      params: ['ref'],
      query: ['timeout'],
    },
  },
  '/v1/jobs/{ref}/cancel': {
    post: {
      id: 'cancelJob',
      res: 'JobCancelled',
      summary: 'Cancel a run (by id), or every active run of a job and its schedule (by name)',
      params: ['ref'],
    },
  },
  '/v1/jobs/{ref}/logs': {
    get: {
      id: 'jobLogs',
      res: 'text',
      summary:
        "A run's attempt log as text (the latest run of a job; its last attempt unless ?attempt=N): stdout and stderr interleaved",
      params: ['ref'],
      query: ['attempt'],
    },
  },
  '/v1/jobs/{ref}/logs/stream': {
    get: {
      id: 'followJobLogs',
      res: 'sse',
      summary:
        'The same log as Server-Sent Events: log events {data} (what is logged so far, then, with ?follow=1, each write until the attempt ends), then end {run, attempt}',
      params: ['ref'],
      query: ['attempt', 'follow'],
    },
  },
  '/v1/jobs/{ref}/artifacts': {
    get: { id: 'listJobArtifacts', res: 'JobArtifacts', summary: "A run's artifacts (the latest run of a job)", params: ['ref'] },
  },
  '/v1/jobs/{ref}/artifacts/{name}': {
    get: {
      id: 'downloadJobArtifact',
      res: 'bytesOrTar',
      summary:
        'Download an artifact: a file as it is, a directory as a tar (Content-Type application/x-tar); X-Realm-Artifact-Outcome says how the attempt that made it ended',
      params: ['ref', 'name'],
    },
  },
};
