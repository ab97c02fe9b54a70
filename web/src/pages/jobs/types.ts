/** The jobs API's shapes (GET /v1/jobs, /v1/jobs/{ref}): the SDK's types. */

export type { JobArtifact, JobAttempt, JobInfo, JobRun, JobRunState } from '@realm/sdk';
import type { JobRunState } from '@realm/sdk';

export const ENDED: readonly JobRunState[] = ['succeeded', 'failed', 'cancelled'];

/** An input the dashboard adds to a TOML spec: an uploaded file. */
export interface ExtraInput {
  source: string;
  dest: string;
  unpack?: boolean;
}
