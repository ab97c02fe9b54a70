/**
 * The conformance suite against the wasm driver. Its sandboxes run WebAssembly modules only (the
 * capability `nativePrograms` is false), so the cases that need a shell or an interpreter skip by
 * that capability, and those written over the per-driver program table (cases-programs.ts) run
 * with a module built from C here.
 */
import { wasmSkipReason } from '../helpers/wasm.js';
import { conformanceSuite } from './suite.js';

conformanceSuite('wasm', await wasmSkipReason());
