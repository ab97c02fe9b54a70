/**
 * The API contract exists once: the SDK's request types and the daemon's zod schemas must accept
 * the same shapes (checked by the compiler: a drift fails the build), and the SDK's error
 * catalogue must list the daemon's codes with the same HTTP statuses (checked here).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { API_ERROR_STATUS, type ExecOptions, type RunOptions, type SandboxCreateOptions } from '@realm/sdk';
import { ERROR_STATUS } from '../../src/util/errors.js';
import type { CreateSandboxInput, ExecInput, RunInput } from '../../src/engine/schemas.js';

/** `true` when each type is assignable to the other. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

// Each line stops compiling when the SDK and the daemon disagree on a request's shape.
const sandboxCreate: Same<SandboxCreateOptions, CreateSandboxInput> = true;
const exec: Same<Omit<ExecOptions, 'signal'>, Omit<ExecInput, 'command'>> = true;
const runs: Same<RunOptions, RunInput> = true;

void describe('API contract', () => {
  void it('request types of the SDK and schemas of the daemon are the same shapes', () => {
    assert.deepEqual([sandboxCreate, exec, runs], [true, true, true]);
  });

  void it('the SDK lists every error code of the daemon with the same status', () => {
    assert.deepEqual({ ...API_ERROR_STATUS }, { ...ERROR_STATUS });
  });
});
