/** Checks for decoding a driver's state read back from the store (see `Driver.decodeState`). */
import type { DriverName, DriverState } from '../driver.js';

export const isString = (v: unknown): v is string => typeof v === 'string';
export const isOptNumber = (v: unknown): v is number | undefined => v === undefined || typeof v === 'number';
export const isOptString = (v: unknown): v is string | undefined => v === undefined || typeof v === 'string';
export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A state that is not this driver's: the record is damaged or names the wrong driver. */
export function foreignState(driver: DriverName, raw: DriverState): Error {
  return new Error(`the stored state is not a ${driver} sandbox's (${JSON.stringify(raw).slice(0, 200)})`);
}
