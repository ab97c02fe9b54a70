/**
 * A process service's desired state, as pushed (`realm push NAME --image IMG --command CMD --port
 * P`, POST /v1/services): what runs, how many replicas, their limits, how health is checked and
 * how a crashed replica is restarted. Durations and sizes take the units people write.
 */
import { z } from 'zod';
import { cpusField, durationField, envField, sizeField } from '../engine/schemas.js';
import { APP_NAME } from '../gateway/apps.js';
import type { PackageRef } from '../packages/ref.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The most replicas one service may ask for on a node. */
export const MAX_SERVICE_REPLICAS = 32;

/**
 * The health check. Defaults follow Kubernetes' probes (every 10 s, 1 s timeout, 3 failures to
 * fail, 1 success to pass). A replica gets traffic only once a check passed; a new replica is
 * checked every 250 ms until its first pass, so it joins as soon as it listens. Without a
 * `path` the check is a TCP connect to the port.
 */
export const healthSchema = z
  .object({
    /** An HTTP GET of this path must answer 2xx or 3xx; absent: a TCP connect must open. */
    path: z
      .string()
      .max(1024)
      .regex(/^\/[^\s]*$/, 'a health path starts with / and holds no spaces')
      .optional(),
    interval: durationField(100, 3_600_000).default(10_000),
    timeout: durationField(50, 60_000).default(1_000),
    /** Consecutive failures before a healthy replica loses its traffic. */
    threshold: z.number().int().min(1).max(100).default(3),
  })
  .strict();

/**
 * Restarts of a crashed replica. Defaults are Nomad's for services: 30 s, doubling each crash up
 * to 1 h, without end; the delay starts again from `delay` after a replica ran 10 minutes.
 */
export const restartSchema = z
  .object({
    delay: durationField(0, 3_600_000).default(30_000),
    maxDelay: durationField(0, 24 * 3_600_000).default(3_600_000),
  })
  .strict();

/**
 * How an update (a push of a changed service, `svc restart`) rolls out: one new replica at a time
 * (at most one more than wanted), each healthy for `minHealthyTime` before an old one goes; a new
 * replica that exits, or is not healthy within `healthyDeadline` of its start, stops the rollout
 * and brings the previous generation back. Defaults: Nomad's healthy_deadline (5 min) and
 * Kubernetes' minReadySeconds (0).
 */
export const updateSchema = z
  .object({
    healthyDeadline: durationField(1_000, 24 * 3_600_000).default(300_000),
    minHealthyTime: durationField(0, 3_600_000).default(0),
  })
  .strict();

/** The shortest lease TTL a node takes (`realm serve --lease-ttl`, 2..300 s). */
export const MIN_LEASE_TTL_MS = 2_000;

/**
 * What a node cut off from etcd does with the service's replicas (Nomad's `disconnect {
 * stop_on_client_after }`). Absent (the default, Kubernetes' too): they keep running while the
 * node is cut off, and the cluster places replacements elsewhere once the node's lease ends, so
 * two copies can run until it reconnects. `stopAfter`: the node stops them once its lease has
 * not been known alive for that long, and starts them again only where the cluster places them
 * once etcd answers. At least the lease TTL (checked where the push is taken, desired.ts): the
 * cluster re-places at about the TTL, so `stopAfter - TTL` is the longest two copies overlap.
 */
export const disconnectSchema = z
  .object({
    stopAfter: durationField(MIN_LEASE_TTL_MS, 7 * 24 * 3_600_000),
  })
  .strict()
  .describe(
    "in a cluster: a node cut off from etcd stops the service's replicas once its lease was not known alive for stopAfter (at least the lease TTL, e.g. 30s); absent: they keep running",
  );

export const pushServiceSchema = z
  .object({
    name: z.string().max(256),
    image: z.string().min(1).max(4096),
    /** A shell string run with /bin/sh -c in the sandbox user's home. */
    command: z
      .string()
      .min(1)
      .max(64 * 1024),
    port: z.number().int().min(1).max(65535),
    replicas: z.number().int().min(0).max(MAX_SERVICE_REPLICAS).default(1),
    memory: sizeField(16 * MiB, 256 * GiB).default(512 * MiB),
    cpus: cpusField.default(1),
    pids: z.number().int().min(8).max(1_000_000).default(256),
    env: envField.default({}),
    /** Stored for the cluster's placement (a node with every tag). */
    tags: z
      .array(z.string().regex(/^[A-Za-z0-9_.:=-]{1,63}$/, 'tags are 1-63 of letters, digits and _ . : = -'))
      .max(32)
      .default([]),
    visibility: z.enum(['local', 'public']).default('local'),
    health: healthSchema.prefault({}),
    restart: restartSchema.prefault({}),
    update: updateSchema.prefault({}),
    /** Absent: replicas keep running on a node cut off from etcd (see disconnectSchema). */
    disconnect: disconnectSchema.optional(),
  })
  .strict()
  .refine((s) => APP_NAME.test(s.name), {
    message: 'a service name is 1-63 of a-z, 0-9 and -, starting with a letter or digit (it is a URL path segment)',
    path: ['name'],
  });
export type PushServiceInput = z.input<typeof pushServiceSchema>;
export type ServiceSpec = z.output<typeof pushServiceSchema>;

export const scaleSchema = z.object({ replicas: z.number().int().min(0).max(MAX_SERVICE_REPLICAS) }).strict();

/** A service's desired state as kept: the spec, who owns it, and a generation that a restart or push moves on. */
export interface ServiceRecord {
  spec: ServiceSpec;
  owner: string;
  /** Replicas of an older generation are replaced (push, `svc restart`). */
  generation: number;
  createdAt: number;
  updatedAt: number;
  /** Set when deployed from a package (`realm package deploy`): its name, version, digest and mounts. */
  package?: PackageRef;
  /** While `generation` rolls out (history.ts): what a failure brings back. Absent once it is over. */
  rollout?: Rollout | undefined;
  /** The generations, oldest first (the last HISTORY_MAX); absent in records written before rollouts. */
  history?: GenerationEntry[] | undefined;
}

export interface Rollout {
  startedAt: number;
  /**
   * The generation replaced: its spec and its package (with the mounts' tree digests), all a
   * failure brings back; null when there is none that rolled out (nothing to go back to).
   */
  from: { generation: number; spec: ServiceSpec; package?: PackageRef | undefined } | null;
}

/** One generation of a service, as `realm svc history` shows it. */
export interface GenerationEntry {
  generation: number;
  /** sha256 of the spec as pushed (history.ts's specDigest). */
  digest: string;
  at: number;
  /** The principal that pushed or restarted. */
  by: string;
  cause: 'push' | 'restart';
  /** The package it was deployed from (its mounts' trees included); absent for a service pushed without one. */
  package?: PackageRef | undefined;
  outcome: 'rolling-out' | 'rolled-out' | 'rolled-back' | 'failed' | 'superseded';
  /** Why it rolled back or failed. */
  reason: string | null;
  finishedAt: number | null;
}
