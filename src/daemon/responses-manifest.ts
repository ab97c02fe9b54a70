/** Response shapes of the manifest and trust routes (see responses.ts for the others). */
import { z } from 'zod';

const time = z.string().describe('ISO 8601');
const owner = z.object({
  publicKey: z.string().describe('realm-ed25519:BASE64'),
  fingerprint: z.string().describe('SHA256:BASE64 of the raw key'),
});

export const trustedKeyResponse = z.object({
  publicKey: z.string(),
  fingerprint: z.string(),
  how: z.enum(['first-use', 'explicit']).describe('first-use: the key of the first signed manifest; explicit: realm node trust'),
  addedAt: z.number().int().describe('ms since the epoch'),
});

export const trustListResponse = z.object({
  keys: z.array(trustedKeyResponse),
  firstUseOpen: z.boolean().describe('no key was ever trusted: the next signed manifest’s key will be'),
});

const serviceChange = z.object({
  name: z.string(),
  change: z.enum(['added', 'removed', 'changed']),
  kind: z.literal('app').optional().describe('app: a wasm app ([apps.NAME]); absent: a service'),
  fields: z
    .array(z.object({ field: z.string(), from: z.unknown(), to: z.unknown() }))
    .describe('environment values show as "(set)"'),
});

/** A service in manifest form: every field explicit, sizes in bytes, durations in ms; one from a package: package_sha256 and replicas. */
const manifestService = z
  .record(z.string(), z.unknown())
  .describe(
    'image, command, port, replicas, limits, health, restart (sizes in bytes, durations in ms); or, for a service from a package, package_sha256 (of the .realm file) and replicas',
  );

export const manifestStatusResponse = z.object({
  trusted: z.array(trustedKeyResponse),
  firstUseOpen: z.boolean(),
  current: z
    .object({ version: z.number().int(), owner, appliedAt: time, appliedBy: z.string() })
    .nullable()
    .describe('the manifest applied last; null: none yet'),
  drift: z.array(serviceChange).describe('what live changes (svc scale, push, svc rm) made of the applied manifest'),
  services: z
    .record(z.string(), manifestService)
    .describe("the applied manifest's services as they are now (what export writes)"),
  unmanaged: z
    .record(z.string(), manifestService)
    .describe('services made ad hoc and never in a manifest (apply leaves them alone)'),
  apps: z
    .record(z.string(), manifestService)
    .describe("the applied manifest's wasm apps as they are now: module sha256, memory, fuel, timeout, visibility, replicas"),
  unmanagedApps: z
    .record(z.string(), manifestService)
    .describe('wasm apps pushed ad hoc and never in a manifest (apply leaves them alone)'),
});

export const manifestAppliedResponse = z.object({
  version: z.number().int(),
  owner,
  trusted: z.enum(['first-use', 'already']).describe("first-use: this node trusts the manifest's key from now on"),
  changes: z.array(serviceChange),
});

export const manifestDiffResponse = z.object({
  changes: z
    .array(serviceChange)
    .describe('what apply would do: services added, removed (only those a manifest put there) and changed'),
  unmanaged: z.array(z.string()).describe('services made ad hoc that apply would leave alone'),
  unmanagedApps: z.array(z.string()).describe('wasm apps pushed ad hoc that apply would leave alone'),
});
