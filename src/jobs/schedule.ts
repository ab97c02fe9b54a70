/**
 * When a cron job fires: its expressions in its time zone (croner does the calendar). Daylight
 * saving time neither skips nor doubles a fixed-time firing: one set in the hour the clocks skip
 * fires at the first valid time after the gap, and one set in the hour that repeats fires once;
 * interval expressions (every 15 minutes, say) follow real time through both. And, after the node was
 * down, which firings it missed and which of those to run (`missed = skip | latest | all`).
 *
 * @example
 * nextFiring(['30 2 * * *'], 'Europe/Berlin', new Date('2026-03-28T12:00:00Z')); // 2026-03-29T01:00Z (03:00 CEST)
 */
import { Cron } from 'croner';

/** Most missed firings `missed = "all"` catches up on (the rest are skipped, with an event saying so). */
export const MAX_CATCH_UP = 100;

function cron(expr: string, timezone: string): Cron {
  // 5 fields (minute resolution); 6 with a leading seconds field. Day of month and day of week
  // are ORed, as in Vixie cron.
  return new Cron(expr, { timezone, paused: true, mode: '5-or-6-parts', domAndDow: false });
}

/** What is wrong with a cron expression, in words; undefined when it is fine. */
export function checkCron(expr: string, timezone: string): string | undefined {
  try {
    cron(expr, timezone);
    return undefined;
  } catch (e) {
    return `"${expr}" is not a cron expression (minute hour day-of-month month day-of-week, e.g. "0 3 * * *"): ${(e as Error).message}`;
  }
}

/** The first firing of any of `exprs` strictly after `after`; undefined if none ever comes. */
export function nextFiring(exprs: readonly string[], timezone: string, after: Date): Date | undefined {
  let best: Date | undefined;
  for (const e of exprs) {
    const d = cron(e, timezone).nextRun(after);
    if (d && (!best || d < best)) best = d;
  }
  return best;
}

export interface CatchUp {
  /** The firings to run now, oldest first. */
  run: Date[];
  /** The firings not run, and why (each an event). */
  skipped: { at: Date; reason: string }[];
}

/**
 * The firings after `last` up to `now` (the node was down, or busy, through them), and which to
 * run under the `missed` policy.
 */
export function missedFirings(
  exprs: readonly string[],
  timezone: string,
  last: Date,
  now: Date,
  missed: 'skip' | 'latest' | 'all',
): CatchUp {
  const all: Date[] = [];
  let at: Date | undefined = last;
  let more = false;
  while ((at = nextFiring(exprs, timezone, at)) && at <= now) {
    if (all.length === MAX_CATCH_UP * 10) {
      more = true; // a minutely job down for weeks: the oldest ones are not listed one by one
      break;
    }
    all.push(at);
  }
  const skipped: CatchUp['skipped'] = [];
  let run: Date[] = [];
  if (missed === 'all') {
    run = all.slice(-MAX_CATCH_UP);
    for (const d of all.slice(0, -MAX_CATCH_UP))
      skipped.push({ at: d, reason: `missed; more than ${MAX_CATCH_UP} to catch up on, the oldest are skipped` });
  } else if (missed === 'latest') {
    run = all.slice(-1);
    for (const d of all.slice(0, -1)) skipped.push({ at: d, reason: 'missed; only the latest is caught up (missed = "latest")' });
  } else {
    for (const d of all) skipped.push({ at: d, reason: 'missed while the node was down (missed = "skip")' });
  }
  if (more) skipped.push({ at: now, reason: `missed; more than ${MAX_CATCH_UP * 10} firings, not listed one by one` });
  return { run, skipped };
}
