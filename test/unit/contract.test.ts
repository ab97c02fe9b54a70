/**
 * The API contract exists once: the SDK's request types and the daemon's zod schemas must accept
 * the same shapes (checked by the compiler: a drift fails the build), and the SDK's error
 * catalogue must list the daemon's codes with the same HTTP statuses (checked here).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { z } from 'zod';
import {
  API_ERROR_STATUS,
  type BlobInfo,
  type BlobUpload,
  type BuiltImage,
  type ExecOptions,
  type ExecResult,
  type FileInfo,
  type ImageInfo,
  type LanguageInfo,
  type NetworkInfo,
  type NodeInfo,
  type PackageDeployment,
  type ProcessInfo,
  type ServiceGeneration,
  ServiceInfo,
  type ServicePushOptions,
  type RunOptions,
  type RunResult,
  type SandboxCreateOptions,
  type SandboxInfo,
  type SandboxStats,
  type TokenInfo,
  type VolumeInfo,
  type WorkspaceInfo,
} from '@realm/sdk';
import type * as R from '../../src/daemon/responses.js';
import type { sandboxStatsResponse } from '../../src/daemon/responses-observe.js';
import type { packageDeploymentResponse } from '../../src/daemon/responses-services.js';
import { ERROR_STATUS } from '../../src/util/errors.js';
import type { CreateSandboxInput, ExecInput, RunInput } from '../../src/engine/schemas.js';
import type { PushServiceInput } from '../../src/services/spec.js';

/** `true` when each type is assignable to the other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** `true` when A is assignable to B. */
type Extends<A, B> = [A] extends [B] ? true : false;

// Each line stops compiling when the SDK and the daemon disagree on a request's shape.
const sandboxCreate: Same<SandboxCreateOptions, CreateSandboxInput> = true;
const exec: Same<Omit<ExecOptions, 'signal'>, Omit<ExecInput, 'command'>> = true;
const runs: Same<RunOptions, RunInput> = true;
const servicePush: Same<ServicePushOptions, PushServiceInput> = true;

// And on the answers: the SDK's response types are the OpenAPI document's response schemas.
type Out<S extends z.ZodType> = z.output<S>;
const answers = {
  sandbox: true satisfies Same<SandboxInfo, Out<typeof R.sandboxResponse>>,
  exec: true satisfies Same<ExecResult, Out<typeof R.execResult>>,
  run: true satisfies Same<RunResult, Out<typeof R.runResult>>,
  volume: true satisfies Same<VolumeInfo, Out<typeof R.volumeResponse>>,
  language: true satisfies Same<LanguageInfo, Out<typeof R.languageInfo>>,
  file: true satisfies Same<FileInfo, Out<typeof R.fileInfo>>,
  network: true satisfies Same<NetworkInfo, Out<typeof R.networkResponse>>,
  workspace: true satisfies Same<WorkspaceInfo, Out<typeof R.workspaceResponse>>,
  token: true satisfies Same<TokenInfo, Out<typeof R.tokenInfo>>,
  process: true satisfies Same<ProcessInfo, Out<typeof R.processInfo>>,
  image: true satisfies Same<ImageInfo, Out<typeof R.imageListResponse>['images'][number]>,
  built: true satisfies Same<BuiltImage, Out<typeof R.builtImagesResponse>['images'][number]>,
  blob: true satisfies Same<BlobInfo, Out<typeof R.blobResponse>>,
  blobUpload: true satisfies Same<BlobUpload, Out<typeof R.blobUploadResponse>>,
  service: true satisfies Same<ServiceInfo, Out<typeof R.serviceResponse>>,
  packageDeployment: true satisfies Same<PackageDeployment, Out<typeof packageDeploymentResponse>>,
  serviceGeneration: true satisfies Same<ServiceGeneration, Out<typeof R.serviceHistoryResponse>['history'][number]>,
  stats: true satisfies Same<SandboxStats, Out<typeof sandboxStatsResponse>>,
  // The SDK reads node info of older daemons too (fields it lacks are optional there): one way.
  node: true satisfies Extends<Out<typeof R.nodeResponse>, NodeInfo>,
};

void describe('API contract', () => {
  void it('request types of the SDK and schemas of the daemon are the same shapes', () => {
    assert.deepEqual([sandboxCreate, exec, runs, servicePush], [true, true, true, true]);
  });

  void it('response types of the SDK and response schemas of the OpenAPI document are the same shapes', () => {
    assert.ok(Object.values(answers).every(Boolean));
  });

  void it('the SDK lists every error code of the daemon with the same status', () => {
    assert.deepEqual({ ...API_ERROR_STATUS }, { ...ERROR_STATUS });
  });
});
