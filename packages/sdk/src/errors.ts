/**
 * Typed errors. Every API error has a stable `code`; each code maps to a class so callers can
 * `catch (e) { if (e instanceof SandboxNotFoundError) … }`.
 */

export type ErrorCode =
  | 'INVALID_REQUEST'
  | 'LIMIT_INVALID'
  | 'LANGUAGE_NOT_FOUND'
  | 'IMAGE_NOT_FOUND'
  | 'IMAGE_INVALID'
  | 'IMAGE_TOO_LARGE'
  | 'IMAGE_IN_USE'
  | 'IMAGE_NOT_ALLOWED'
  | 'IMAGE_PULL_FAILED'
  | 'SANDBOX_NOT_FOUND'
  | 'VOLUME_NOT_FOUND'
  | 'NOT_FOUND'
  | 'TOKEN_NOT_FOUND'
  | 'PROCESS_NOT_FOUND'
  | 'WORKSPACE_NOT_FOUND'
  | 'WORKSPACE_BUSY'
  | 'PROCESS_NOT_RUNNING'
  | 'UNAUTHORIZED'
  | 'FILE_NOT_FOUND'
  | 'FILE_INVALID'
  | 'FILE_FORBIDDEN'
  | 'FILE_EXISTS'
  | 'FILE_TOO_LARGE'
  | 'FILE_NO_SPACE'
  | 'SANDBOX_NOT_RUNNING'
  | 'SANDBOX_NAME_TAKEN'
  | 'VOLUME_IN_USE'
  | 'DRIVER_UNAVAILABLE'
  | 'NETWORK_INVALID'
  | 'CAPACITY_EXCEEDED'
  | 'IMAGE_RECIPE_INVALID'
  | 'IMAGE_SUITE_NOT_FOUND'
  | 'IMAGE_PACKAGE_NOT_FOUND'
  | 'IMAGE_BUILD_BUSY'
  | 'IMAGE_BUILD_FAILED'
  | 'ARCHIVE_UNREACHABLE'
  | 'SANDBOX_START_FAILED'
  | 'INTERNAL'
  | 'DAEMON_UNREACHABLE';

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
/** An image that could not be imported or pulled (invalid, too large, registry failure). */
export class ImageError extends RealmError {}
/** No daemon answered at the configured URL. */
export class DaemonUnreachableError extends RealmError {}

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
  TOKEN_NOT_FOUND: NotFoundError,
  PROCESS_NOT_FOUND: NotFoundError,
  WORKSPACE_NOT_FOUND: NotFoundError,
  WORKSPACE_BUSY: ConflictError,
  PROCESS_NOT_RUNNING: ConflictError,
  UNAUTHORIZED: UnauthorizedError,
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
