/**
 * Typed errors. Every API error has a stable `code`; each code maps to a class so callers can
 * `catch (e) { if (e instanceof SandboxNotFoundError) … }`.
 */

/**
 * The API's error codes, each with its one HTTP status: the same catalogue as the daemon's (a
 * contract test compares the two). Codes are added, never renamed.
 */
export const API_ERROR_STATUS = {
  INVALID_REQUEST: 400,
  LIMIT_INVALID: 400,
  LANGUAGE_NOT_FOUND: 404,
  IMAGE_NOT_FOUND: 404,
  IMAGE_NOT_ALLOWED: 403,
  IMAGE_INVALID: 400,
  IMAGE_TOO_LARGE: 413,
  IMAGE_IN_USE: 409,
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
  FORBIDDEN: 403,
  UNSUPPORTED_MEDIA_TYPE: 415,
  HOST_NOT_ALLOWED: 421,
  ORIGIN_NOT_ALLOWED: 403,
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
  MANIFEST_INVALID: 400,
  MANIFEST_SIGNATURE_INVALID: 400,
  MANIFEST_KEY_UNTRUSTED: 403,
  MANIFEST_VERSION_STALE: 409,
  MANIFEST_DIGEST_MISMATCH: 422,
  UPGRADE_INVALID: 400,
  UPGRADE_SIGNATURE: 400,
  UPGRADE_KEY_UNTRUSTED: 403,
  UPGRADE_DOWNGRADE: 409,
  UPGRADE_PLATFORM: 422,
  UPGRADE_PACKAGE_INVALID: 422,
  UPGRADE_BUSY: 409,
  UPGRADE_UNSUPPORTED: 409,
  KEY_INVALID: 400,
  KEY_EXISTS: 409,
  KEY_NOT_FOUND: 404,
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

/** Codes the daemon answers with, and the SDK's own for a daemon it cannot reach. */
export type ErrorCode = keyof typeof API_ERROR_STATUS | 'DAEMON_UNREACHABLE';

/** Base class of every error the SDK throws. */
export class RealmError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class InvalidRequestError extends RealmError {}
export class NotFoundError extends RealmError {}
export class SandboxNotFoundError extends NotFoundError {}
export class LanguageNotFoundError extends NotFoundError {}
export class ConflictError extends RealmError {}
export class DriverUnavailableError extends RealmError {}
export class CapacityError extends RealmError {}
export class SandboxStartError extends RealmError {}
export class InternalError extends RealmError {}
/** An image build failed: a bad recipe, an unknown suite or package, an unreachable archive. */
export class ImageBuildError extends RealmError {}
/** A file operation failed: not found, wrong kind, not allowed, exists, too large, no space. */
export class FileError extends RealmError {}
export class FileNotFoundError extends FileError {}
/** The daemon wants a (valid) bearer token: set REALM_TOKEN or pass `token`. */
export class UnauthorizedError extends RealmError {}
/**
 * The daemon refused where the request came from: a `Host` it does not answer to (add
 * `--host-name` on the daemon) or a web page's `Origin` it does not allow (`--cors-origin`).
 */
export class RequestRefusedError extends RealmError {}
/** The caller is known but may not do this (an admin route, for a user who is not root). */
export class ForbiddenError extends RealmError {}
/** An image that could not be imported or pulled (invalid, too large, registry failure). */
export class ImageError extends RealmError {}
/** No daemon answered at the configured URL. */
export class DaemonUnreachableError extends RealmError {}
/**
 * A blob could not be stored or read: its bytes do not match the digest given
 * (BLOB_DIGEST_MISMATCH, nothing was kept), the daemon's copy is corrupt (BLOB_CORRUPT, upload it
 * again), or the daemon's disk is full (BLOB_NO_SPACE).
 */
export class BlobError extends RealmError {}
/** A push was refused (not wasm, an import realm does not provide, a component) or an app failed a gateway request. */
export class AppError extends RealmError {}
/** A signed manifest refused (nothing changed): invalid, bad signature, untrusted key, stale version, digest mismatch. */
export class ManifestError extends RealmError {}
/** A release refused or not installable (nothing was installed): bad signature, untrusted key, not a higher version, another platform, a broken package. */
export class UpgradeError extends RealmError {}

const CLASSES: Record<ErrorCode, new (code: ErrorCode, message: string, status?: number) => RealmError> = {
  INVALID_REQUEST: InvalidRequestError,
  LIMIT_INVALID: InvalidRequestError,
  NETWORK_INVALID: InvalidRequestError,
  LANGUAGE_NOT_FOUND: LanguageNotFoundError,
  IMAGE_NOT_FOUND: NotFoundError,
  IMAGE_INVALID: ImageError,
  IMAGE_TOO_LARGE: ImageError,
  IMAGE_IN_USE: ConflictError,
  /** A host directory outside the operator's --image-dir directories (or / or the data dir). */
  IMAGE_NOT_ALLOWED: ImageError,
  IMAGE_PULL_FAILED: ImageError,
  SANDBOX_NOT_FOUND: SandboxNotFoundError,
  VOLUME_NOT_FOUND: NotFoundError,
  NOT_FOUND: NotFoundError,
  METHOD_NOT_ALLOWED: InvalidRequestError,
  TOKEN_NOT_FOUND: NotFoundError,
  PROCESS_NOT_FOUND: NotFoundError,
  WORKSPACE_NOT_FOUND: NotFoundError,
  WORKSPACE_BUSY: ConflictError,
  PROCESS_NOT_RUNNING: ConflictError,
  UNAUTHORIZED: UnauthorizedError,
  UNSUPPORTED_MEDIA_TYPE: InvalidRequestError,
  HOST_NOT_ALLOWED: RequestRefusedError,
  ORIGIN_NOT_ALLOWED: RequestRefusedError,
  FORBIDDEN: ForbiddenError,
  FILE_NOT_FOUND: FileNotFoundError,
  FILE_INVALID: FileError,
  FILE_FORBIDDEN: FileError,
  FILE_EXISTS: FileError,
  FILE_TOO_LARGE: FileError,
  FILE_NO_SPACE: FileError,
  SANDBOX_NOT_RUNNING: ConflictError,
  SANDBOX_NAME_TAKEN: ConflictError,
  VOLUME_IN_USE: ConflictError,
  DRIVER_UNAVAILABLE: DriverUnavailableError,
  CAPACITY_EXCEEDED: CapacityError,
  IMAGE_RECIPE_INVALID: ImageBuildError,
  IMAGE_SUITE_NOT_FOUND: ImageBuildError,
  IMAGE_PACKAGE_NOT_FOUND: ImageBuildError,
  IMAGE_BUILD_BUSY: ConflictError,
  IMAGE_BUILD_FAILED: ImageBuildError,
  ARCHIVE_UNREACHABLE: ImageBuildError,
  SANDBOX_START_FAILED: SandboxStartError,
  APP_NOT_FOUND: NotFoundError,
  APP_INVALID: AppError,
  APP_UNSUPPORTED: AppError,
  APP_NAME_TAKEN: ConflictError,
  APP_FAILED: AppError,
  APP_TIMEOUT: AppError,
  SERVICE_NOT_FOUND: NotFoundError,
  SERVICE_NAME_TAKEN: ConflictError,
  SERVICE_UNAVAILABLE: AppError,
  MANIFEST_INVALID: ManifestError,
  MANIFEST_SIGNATURE_INVALID: ManifestError,
  MANIFEST_KEY_UNTRUSTED: ManifestError,
  MANIFEST_VERSION_STALE: ManifestError,
  MANIFEST_DIGEST_MISMATCH: ManifestError,
  UPGRADE_INVALID: UpgradeError,
  UPGRADE_SIGNATURE: UpgradeError,
  UPGRADE_KEY_UNTRUSTED: UpgradeError,
  UPGRADE_DOWNGRADE: UpgradeError,
  UPGRADE_PLATFORM: UpgradeError,
  UPGRADE_PACKAGE_INVALID: UpgradeError,
  UPGRADE_BUSY: UpgradeError,
  UPGRADE_UNSUPPORTED: UpgradeError,
  KEY_INVALID: InvalidRequestError,
  KEY_EXISTS: ConflictError,
  KEY_NOT_FOUND: NotFoundError,
  PACKAGE_INVALID: InvalidRequestError,
  JOB_SPEC_INVALID: InvalidRequestError,
  JOB_NOT_FOUND: NotFoundError,
  JOB_NAME_TAKEN: ConflictError,
  JOB_INPUT_NOT_FOUND: InvalidRequestError,
  JOB_UNPLACEABLE: DriverUnavailableError,
  JOB_NOT_ACTIVE: ConflictError,
  JOB_BUSY: ConflictError,
  BLOB_NOT_FOUND: NotFoundError,
  BLOB_UPLOAD_NOT_FOUND: NotFoundError,
  BLOB_UPLOAD_OFFSET: ConflictError,
  BLOB_DIGEST_MISMATCH: BlobError,
  BLOB_IN_USE: ConflictError,
  BLOB_CORRUPT: BlobError,
  BLOB_NO_SPACE: BlobError,
  BLOB_RANGE_INVALID: InvalidRequestError,
  NODE_NOT_FOUND: NotFoundError,
  NO_NODE_FITS: DriverUnavailableError,
  NODE_UNREACHABLE: DaemonUnreachableError,
  PORT_UNREACHABLE: DaemonUnreachableError,
  CLUSTER_UNAVAILABLE: DaemonUnreachableError,
  JOIN_REFUSED: ForbiddenError,
  NODE_UP: ConflictError,
  METRICS_OFF: NotFoundError,
  STATS_UNAVAILABLE: DriverUnavailableError,
  INTERNAL: InternalError,
  DAEMON_UNREACHABLE: DaemonUnreachableError,
};

/** Build the right error class from an API error body. */
export function errorFromBody(status: number, body: unknown): RealmError {
  const err = (body as { error?: { code?: string; message?: string } } | null)?.error;
  const code = (err?.code && err.code in CLASSES ? err.code : 'INTERNAL') as ErrorCode;
  const Cls = CLASSES[code];
  return new Cls(code, err?.message ?? `HTTP ${status}`, status);
}
