/**
 * What the operator opened beyond realm's closed defaults, as warnings: served by `GET /v1/node`
 * for `realm doctor` and printed by `realm serve` at start. Each says what it opens and to whom.
 */
import { isLoopback } from '../config.js';

export interface Posture {
  host: string;
  anonymous: readonly string[];
  allowPrivate: readonly string[];
  imageDirs: readonly string[];
  hostNames: readonly string[];
  corsOrigins: readonly string[];
  /** Host users, groups or subordinate ranges inside the sandboxes' uid range (HostIds.overlaps). */
  uidOverlaps: readonly string[];
  /** The app gateway's host, when it is on. */
  gatewayHost?: string | undefined;
  /** The separate metrics listener's host (--metrics), when there is one. */
  metricsHost?: string | undefined;
  /** `GET /metrics` on the API without a token (--metrics-public). */
  metricsPublic?: boolean;
}

export function warnings(p: Posture): string[] {
  const out: string[] = [];
  if (!isLoopback(p.host))
    out.push(
      `the API listens on ${p.host}, beyond loopback: tokens cross the network in clear HTTP; put a TLS proxy in front or listen on 127.0.0.1`,
    );
  if (p.gatewayHost !== undefined && !isLoopback(p.gatewayHost))
    out.push(
      `the app gateway listens on ${p.gatewayHost}, beyond loopback: apps pushed with --visibility public are served to anyone who reaches it (local ones stay loopback-only)`,
    );
  if (p.metricsHost !== undefined && !isLoopback(p.metricsHost))
    out.push(
      `the metrics listener (--metrics) listens on ${p.metricsHost}, beyond loopback, without a token: anyone who reaches it reads the node's metrics (sandbox ids, languages, app names)`,
    );
  if (p.metricsPublic)
    out.push(
      "GET /metrics answers without a token (--metrics-public): anyone who reaches the API reads the node's metrics (sandbox ids, languages, app names)",
    );
  if (p.anonymous.length)
    out.push(
      `open without a token on TCP: ${p.anonymous.join(', ')} — anyone who reaches the daemon's address runs code (serve without --anonymous to close it)`,
    );
  if (p.allowPrivate.length)
    out.push(`--allow-private opens ${p.allowPrivate.join(', ')} to every sandbox (network all and allow-lists)`);
  if (p.imageDirs.length)
    out.push(
      `host directories are images for every API caller: ${p.imageDirs.join(', ')} (whatever any local user can read there is readable inside)`,
    );
  if (p.corsOrigins.length)
    out.push(`web pages of ${p.corsOrigins.join(', ')} may call the API from a browser (with a token they hold)`);
  if (p.hostNames.length)
    out.push(
      `the API answers to the host names ${p.hostNames.join(', ')}: each must be yours, or DNS rebinding reaches the daemon through it`,
    );
  if (p.uidOverlaps.length)
    out.push(
      `the sandboxes' uid range (--uid-range) holds ids the host uses: ${p.uidOverlaps.slice(0, 3).join('; ')}${p.uidOverlaps.length > 3 ? ` and ${p.uidOverlaps.length - 3} more` : ''} — sandboxes would share them; pick a free range`,
    );
  return out;
}
