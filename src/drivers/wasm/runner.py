"""realm's WebAssembly runner for preview 2 components (and modules, when asked to): Wasmtime's
Python bindings, which have the component model. realm-wasm (C, the fast path for modules) hands a
component over to it: `python3 -I -S runner.py WASMTIME_DIR --job-fd 3`. It runs inside a
`namespace` sandbox (no network, read-only root, seccomp, its own cgroup and host uid); never in
the daemon.

The job: records of u8 tag + u32 length (big-endian) + bytes, up to an 'X' record, on the job fd
(see src/drivers/wasm/protocol.ts); stdin is the program's.
stdout: frames of u8 kind + u32 length + payload:
        1 the program's stdout · 2 its stderr · 3 the result (JSON), always the last ·
        4 the compiled module (when asked, before anything of it ran).

The result says how the program ended: `exit` (with its code), `trap` (with Wasmtime's message and
`reason`: fuel, deadline or trap), or `error` (the module could not be loaded: not wasm, an import
realm does not provide, a memory larger than the cap).
"""
import json
import os
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # nothing written beside the runner (src/, the install dir)
sys.path.insert(0, sys.argv[1])
# realm_wasmtime.py (what this runner shares with the gateway's) is installed beside it.
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))
JOB_FD = int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--job-fd" else 0
import wasmtime  # noqa: E402
import wasmtime.component  # noqa: E402

from realm_wasmtime import make_engine, new_store, trap_message, trap_reason  # noqa: E402
from realm_wasmtime import read_exact as read_fd  # noqa: E402

OUT_LOCK = threading.Lock()
PAGE = 65536


def frame(kind, payload):
    data = struct.pack(">BI", kind, len(payload)) + payload
    with OUT_LOCK:
        view = memoryview(data)
        while view:
            n = os.write(1, view)
            view = view[n:]


def read_exact(n):
    return read_fd(JOB_FD, n)


def emitter(kind):
    def emit(data):
        frame(kind, bytes(data))
        return len(data)

    return emit


def is_component(wasm):
    # A component's preamble: \0asm, version 0x0d, layer 1 (a core module's is version 1, layer 0).
    return len(wasm) >= 8 and wasm[:4] == b"\0asm" and wasm[6:8] == b"\x01\x00"


def wasi_config(job):
    wasi = wasmtime.WasiConfig()
    wasi.argv = job["argv"]
    wasi.env = list(job.get("env", {}).items())
    if job.get("stdin"):
        wasi.inherit_stdin()
    wasi.stdout_custom = emitter(1)
    wasi.stderr_custom = emitter(2)
    for d in job.get("dirs", []):
        fd = open_dir_nofollow(d["host"])
        if fd is None:
            raise NotADirectoryError(f"the directory {d['host']} is missing or leads through a symbolic link")
        # Kept open for the run: Wasmtime opens the preopen by this descriptor's name.
        wasi.preopen_dir(f"/proc/self/fd/{fd}", d["guest"], not d.get("readOnly", False))
    return wasi


def open_dir_nofollow(path):
    """The directory `path` (absolute), opened without following a symbolic link on the way (and
    no `..`): a preopen is the directory realm named, never where a planted link points."""
    if not path.startswith("/"):
        return None
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in filter(None, path.split("/")):
            if part == "..":
                return None
            nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except OSError:
        os.close(fd)
        return None
    return fd


def peak_memory(store, instance):
    total = 0
    try:
        for item in instance.exports(store).values():
            if isinstance(item, wasmtime.Memory):
                total += item.size(store) * PAGE
    except Exception:  # noqa: BLE001 - a figure, not a verdict
        pass
    return total


def load(kind, engine, wasm, job):
    """Compile the module or component, or take its compiled form from the daemon's cache."""
    compiled = job.get("_compiled")
    if compiled:
        try:
            return kind.deserialize(engine, compiled)
        except wasmtime.WasmtimeError:
            pass  # compiled by another Wasmtime or configuration: compile it again
    loaded = kind(engine, wasm)
    if job.get("serialize"):
        # Before anything of it ran: what the daemon caches is the compiler's output only.
        frame(4, bytes(loaded.serialize()))
    return loaded


def run(job, wasm):
    fuel = job.get("fuel")
    engine = make_engine(fuel)
    # The deadline: the store's one epoch tick, given by a timer thread.
    store = new_store(engine, job.get("memoryBytes", 256 << 20), fuel)
    try:
        store.set_wasi(wasi_config(job))
    except NotADirectoryError as e:
        return {"status": "error", "error": "WASM_INVALID", "message": str(e)}
    timer = None
    if job.get("timeoutMs"):
        timer = threading.Timer(job["timeoutMs"] / 1000, engine.increment_epoch)
        timer.daemon = True
        timer.start()
    result = {"status": "exit", "code": 0, "memoryBytes": 0}
    cpu = time.process_time()
    try:
        if is_component(wasm):
            component = load(wasmtime.component.Component, engine, wasm, job)
            linker = wasmtime.component.Linker(engine)
            linker.add_wasip2()
            instance = linker.instantiate(store, component)
            index = instance.get_export_index(store, "wasi:cli/run@0.2.0")
            func = None
            if index is not None:
                func = instance.get_func(store, instance.get_export_index(store, "run", index))
            if func is None:
                return {"status": "error", "error": "WASM_UNSUPPORTED", "message": "the component exports no wasi:cli/run (a command component is needed)"}
            out = func(store)
            func.post_return(store)
            result["code"] = 0 if out is None or getattr(out, "tag", "ok") == "ok" else 1
        else:
            module = load(wasmtime.Module, engine, wasm, job)
            linker = wasmtime.Linker(engine)
            linker.define_wasi()
            instance = linker.instantiate(store, module)
            result["memoryBytes"] = peak_memory(store, instance)
            start = instance.exports(store).get("_start")
            if start is None:
                return {"status": "error", "error": "WASM_UNSUPPORTED", "message": "the module exports no _start (a WASI command is needed)"}
            try:
                start(store)
            finally:
                result["memoryBytes"] = peak_memory(store, instance)
    except wasmtime.ExitTrap as e:
        result["code"] = e.code
    except wasmtime.Trap as e:
        code = e.trap_code
        reason = "fuel" if code == wasmtime.TrapCode.OUT_OF_FUEL else "deadline" if code == wasmtime.TrapCode.INTERRUPT else "trap"
        result.update(status="trap", reason=reason, message=trap_message(e.message))
    except wasmtime.WasmtimeError as e:
        text = str(e)
        # An error while running (e.g. a trap in a component's call) is not a load error.
        if "wasm trap" in text or "error while executing" in text:
            result.update(status="trap", reason=trap_reason(text), message=trap_message(text))
        else:
            return {"status": "error", "error": "WASM_INVALID", "message": text.strip()}
    finally:
        if timer:
            timer.cancel()
        # The job's own cpu time (the runner's start-up is not the program's).
        result["cpuMs"] = round((time.process_time() - cpu) * 1000)
    if fuel:
        try:
            result["fuelUsed"] = int(fuel) - store.get_fuel()
        except wasmtime.WasmtimeError:
            pass
    return result


def read_job():
    """The job's records, up to 'X'."""
    job = {"argv": [], "env": {}, "dirs": []}
    while True:
        tag, n = struct.unpack(">BI", read_exact(5))
        value = read_exact(n)
        tag = chr(tag)
        if tag == "X":
            return job
        if tag == "A":
            job["argv"].append(value.decode())
        elif tag == "E":
            k, _, v = value.decode().partition("=")
            job["env"][k] = v
        elif tag == "C":
            job["cwd"] = value.decode()
        elif tag == "D":
            host, _, guest = value[1:].decode().partition("\0")
            job["dirs"].append({"host": host, "guest": guest, "readOnly": value[:1] != b"w"})
        elif tag == "M":
            job["memoryBytes"] = int(value)
        elif tag == "F":
            job["fuel"] = int(value)
        elif tag == "T":
            job["timeoutMs"] = int(value)
        elif tag == "I":
            job["stdin"] = True
        elif tag == "S":
            job["serialize"] = True
        elif tag == "K":
            job["_compiled"] = value


def main():
    job = read_job()
    os.chdir(job.get("cwd", "/"))
    module = job["argv"][0]
    try:
        with open(module, "rb") as m:
            wasm = m.read()
    except OSError as e:
        result = {"status": "error", "error": "WASM_INVALID", "message": f"{module}: {e.strerror}"}
    else:
        if wasm[:4] != b"\0asm":
            result = {"status": "error", "error": "WASM_INVALID", "message": f"{module} is not a WebAssembly module or component"}
        else:
            result = run(job, wasm)
    frame(3, json.dumps(result).encode())
    # The program's exit code is the runner's (a trap or a load error: 1).
    os._exit(result["code"] if result["status"] == "exit" and 0 <= result["code"] < 256 else 1)


main()
