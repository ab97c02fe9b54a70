/** What an engine is made with: its data dir, the sandboxes' host uids, and the limits and defaults of a node. */
import type { DriverName } from '../drivers/driver.js';
import type { UidRange } from './host-ids.js';

export interface EngineConfig {
  dataDir: string;
  /** Host uids (and gids) sandboxes run as outside their user namespace, one each (see host-ids.ts). */
  uidRange: UidRange;
  /** At most this many live sandboxes (one-shot runs included). */
  maxSandboxes: number;
  /** Extra language directories searched after realm's own. */
  languageDirs: string[];
  /** Sandboxes kept ready per shape for creates and for runs (0: build every one on demand). */
  warm: number;
  /** Most sandboxes a busy shape keeps ready: demand raises a shape from `warm` up to this (default 4 × warm). */
  warmMax?: number | undefined;
  /** At most this many one-shot runs at once; more are refused (429), never queued without bound. */
  maxRuns?: number;
  /** Host names the network proxies resolve to these addresses (operator pins). */
  pinnedHosts?: Record<string, string>;
  /** Address ranges (CIDR) the proxies may reach although private, link-local or the host's (`realm serve --allow-private`). */
  allowPrivate?: string[];
  /** Why network `all` cannot be kept to the public internet here (no egress guard): such sandboxes and runs are refused. */
  networkAllRefused?: string | undefined;
  /** A PEM file of CAs that real hosts may be signed by, besides the usual ones (for HTTPS injection). */
  proxyUpstreamCa?: string | undefined;
  /** Most bytes one image layer may have (compressed or unpacked); default 8 GiB. */
  maxLayerBytes?: number;
  /** The driver of creates and runs that name none (default namespace). */
  defaultDriver?: DriverName;
  /** Bytes of program output the daemon holds in memory at most, over all execs, runs and
   * background processes (default REALM_OUTPUT_BUDGET, else a quarter of RAM up to 2 GiB). */
  outputBudget?: number;
  /** Where built image tarballs are cached (default `<data-dir>/cache/images`). */
  imageCacheDir?: string;
  /** Host directories whose subdirectories may be images (`realm serve --image-dir`); none by default. */
  imageDirs?: string[];
}
