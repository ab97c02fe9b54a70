/**
 * The stable catalogue of error codes. Each code has one HTTP status; the SDK maps codes to
 * error classes. Add codes, never rename them.
 */
export const ERROR_STATUS = {
  INVALID_REQUEST: 400,
  LIMIT_INVALID: 400,
  LANGUAGE_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  IMAGE_INVALID: 400,
  IMAGE_TOO_LARGE: 413,
  IMAGE_IN_USE: 409,
  IMAGE_NOT_ALLOWED: 403,
  IMAGE_PULL_FAILED: 502,
  SANDBOX_NOT_FOUND: 404,
  VOLUME_NOT_FOUND: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  TOKEN_NOT_FOUND: 404,
  PROCESS_NOT_FOUND: 404,
  WORKSPACE_NOT_FOUND: 404,
  WORKSPACE_BUSY: 409,
  PROCESS_NOT_RUNNING: 409,
  UNAUTHORIZED: 401,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HOST_NOT_ALLOWED: 421,
  ORIGIN_NOT_ALLOWED: 403,
  FORBIDDEN: 403,
  FILE_NOT_FOUND: 404,
  FILE_INVALID: 400,
  FILE_FORBIDDEN: 403,
  FILE_EXISTS: 409,
  FILE_TOO_LARGE: 413,
  FILE_NO_SPACE: 507,
  SANDBOX_NOT_RUNNING: 409,
  SANDBOX_NAME_TAKEN: 409,
  VOLUME_IN_USE: 409,
  DRIVER_UNAVAILABLE: 422,
  NETWORK_INVALID: 400,
  CAPACITY_EXCEEDED: 429,
  IMAGE_RECIPE_INVALID: 400,
  IMAGE_SUITE_NOT_FOUND: 422,
  IMAGE_PACKAGE_NOT_FOUND: 422,
  IMAGE_BUILD_BUSY: 409,
  IMAGE_BUILD_FAILED: 500,
  ARCHIVE_UNREACHABLE: 503,
  SANDBOX_START_FAILED: 500,
  APP_NOT_FOUND: 404,
  APP_INVALID: 400,
  APP_UNSUPPORTED: 422,
  APP_NAME_TAKEN: 409,
  APP_FAILED: 502,
  APP_TIMEOUT: 504,
  SERVICE_NOT_FOUND: 404,
  SERVICE_NAME_TAKEN: 409,
  SERVICE_UNAVAILABLE: 503,
  PACKAGE_INVALID: 400,
  JOB_SPEC_INVALID: 400,
  JOB_NOT_FOUND: 404,
  JOB_NAME_TAKEN: 409,
  JOB_INPUT_NOT_FOUND: 422,
  JOB_UNPLACEABLE: 422,
  JOB_NOT_ACTIVE: 409,
  JOB_BUSY: 409,
  BLOB_NOT_FOUND: 404,
  BLOB_UPLOAD_NOT_FOUND: 404,
  BLOB_UPLOAD_OFFSET: 409,
  BLOB_DIGEST_MISMATCH: 400,
  BLOB_IN_USE: 409,
  BLOB_CORRUPT: 500,
  BLOB_NO_SPACE: 507,
  BLOB_RANGE_INVALID: 416,
  NODE_NOT_FOUND: 404,
  NO_NODE_FITS: 422,
  NODE_UNREACHABLE: 502,
  PORT_UNREACHABLE: 502,
  CLUSTER_UNAVAILABLE: 503,
  JOIN_REFUSED: 403,
  NODE_UP: 409,
  METRICS_OFF: 404,
  STATS_UNAVAILABLE: 422,
  INTERNAL: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** An error a user can act on: a stable code and a message that says what to change. */
export class RealmError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;
  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'RealmError';
    this.code = code;
    this.details = details;
  }
  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export function isRealmError(e: unknown): e is RealmError {
  return e instanceof RealmError;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
