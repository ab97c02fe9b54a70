"""What realm's two Python runners on Wasmtime share: runner.py (one-shot components) and the
gateway's http-component.py. Installed beside them (scripts/setup.sh), byte-checked with them by
the daemon (src/drivers/wasm/runtime.ts), and imported from the runner's own directory. The
Wasmtime package must be on sys.path before this module is imported.

One engine configuration for both, so a limit means the same in each: epoch interruption (the
deadline), fuel only when there is a budget, Cranelift for speed, one compiler thread (a sandbox
has few pids), the component model. One store set-up: the memory cap as Wasmtime's StoreLimits,
the fuel, a deadline one epoch tick away.
"""
import os

import wasmtime


def make_engine(fuel):
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = bool(fuel)
    config.cranelift_opt_level = "speed"
    config.parallel_compilation = False
    config.wasm_component_model = True
    return wasmtime.Engine(config)


def new_store(engine, memory, fuel):
    """A fresh store: `memory` bytes at most (a memory.grow past it fails), `fuel` instructions
    (0: none counted), and a deadline at the engine's next epoch tick (the caller's timer gives
    it; Wasmtime checks at function entries and loop headers, so a loop with no calls stops too)."""
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=memory, table_elements=1 << 20, instances=64, tables=64, memories=16)
    if fuel:
        store.set_fuel(int(fuel))
    store.set_epoch_deadline(1)
    return store


def trap_message(text):
    """The trap itself: Wasmtime's message is a backtrace, then "Caused by:" and the trap."""
    cause = text.split("Caused by:")[-1].strip()
    return cause[len("wasm trap: "):] if cause.startswith("wasm trap: ") else cause


def trap_reason(text):
    """fuel, deadline or trap, from the text of an error raised while the program ran."""
    return "fuel" if "all fuel consumed" in text else "deadline" if "wasm trap: interrupt" in text else "trap"


def read_exact(fd, n, chunk=1 << 20):
    """n bytes of fd; EOFError when it ends first."""
    parts = []
    while n > 0:
        b = os.read(fd, min(n, chunk))
        if not b:
            raise EOFError("the job's input ended before the job did")
        parts.append(b)
        n -= len(b)
    return b"".join(parts)
