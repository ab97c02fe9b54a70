"""realm's gateway runner for wasi:http/incoming-handler components (WASI preview 2, the
wasi:http/proxy world), on Wasmtime's Python bindings. Wasmtime's C API adds wasi:http's types but
gives a host no way to make the incoming-request and response-outparam that `handle` takes, so
this runner is the host of the whole proxy world itself: wasi:http/types, wasi:io (error, poll,
streams), wasi:clocks, wasi:random and wasi:cli's stdio, as Wasmtime host resources and functions.
No file system, sockets or environment are offered, and outgoing requests are denied, so a
component importing them is refused at push. Every request gets a fresh store and instance with
the app's memory cap (StoreLimits), fuel and an epoch deadline. It runs inside a `namespace`
sandbox (no network, read-only root, seccomp, its own cgroup and uid); never in the daemon:
`python3 -I -S http-component.py WASMTIME_DIR`.

Records in (u8 tag + u32 big-endian length + bytes), on stdin:
  the app: W component · M memory cap · F fuel · T deadline ms · C check only · X end;
  then each request: R method · P path and query · S scheme · U authority · H name\\0value · B body · X end.
Frames out (u8 kind + u32 length + payload), on stdout:
  5 the response head (JSON {status, headers}) · 1 body bytes · 2 the component's stdout and stderr ·
  3 the result (JSON), last: after the app's load {status: ready|error}, after a request
  {status: exit|trap|error, reason?: fuel|deadline|trap, message?}.
"""
import io
import json
import os
import re
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # nothing written beside the runner (src/, the install dir)
sys.path.insert(0, sys.argv[1])
# The runner's own modules (realm_proxy_*.py, realm_wasmtime.py) are installed beside it.
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))
import wasmtime  # noqa: E402
from wasmtime.component import Component, Linker  # noqa: E402

import realm_proxy_host as H  # noqa: E402
from realm_proxy_host import MAX_READ, Fail, Plain, Request, frame, own  # noqa: E402
from realm_proxy_http import define_http  # noqa: E402
from realm_proxy_io import define_host, define_io  # noqa: E402
from realm_wasmtime import make_engine, new_store, trap_message, trap_reason  # noqa: E402


def fast_bytes():
    """list<u8> (every body chunk) in and out of the C API in one copy: the bindings convert it a
    byte at a time (1.3 s for a 1 MB echo here). A value's kind is its first byte and a u8 its
    payload's (see wasmtime_component_val_t); anything else goes the bindings' own way."""
    from wasmtime import _ffi as ffi
    from wasmtime.component import _types
    import ctypes
    size = ctypes.sizeof(ffi.wasmtime_component_val_t)
    off = ffi.wasmtime_component_val_t.of.offset
    kind = ffi.WASMTIME_COMPONENT_U8.value
    to_c, from_c = _types.ListType.convert_to_c, _types.ListType.convert_from_c

    def convert_to_c(self, store, val, ptr):
        if not (isinstance(val, (bytes, bytearray)) and self._is_bytes()):
            return to_c(self, store, val, ptr)
        raw = ffi.wasmtime_component_vallist_t()
        ffi.wasmtime_component_vallist_new_uninit(raw, len(val))
        if val:
            buf = bytearray(size * len(val))
            buf[0::size] = bytes([kind]) * len(val)
            buf[off::size] = val
            ctypes.memmove(raw.data, bytes(buf), len(buf))
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
        ptr.contents.of.list = raw

    def convert_from_c(self, c):
        if not self._is_bytes():
            return from_c(self, c)
        assert c.kind == ffi.WASMTIME_COMPONENT_LIST.value
        try:
            n = c.of.list.size
            return ctypes.string_at(c.of.list.data, size * n)[off::size] if n else b""
        finally:
            ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))

    _types.ListType.convert_to_c, _types.ListType.convert_from_c = convert_to_c, convert_from_c

    # A type's parts (a variant's cases, a list's element, a result's ok and err, ...) are read
    # from the C API, as new objects, at every use: each is kept on its type once read. Types do
    # not change, and with the host functions' types kept (below) the same objects serve every call.
    def memo(cls, name):
        attr = cls.__dict__[name]
        getter = attr.fget if isinstance(attr, property) else attr
        key = "_realm_" + name

        def get(self):
            known = self.__dict__.get(key, get)
            if known is get:
                known = self.__dict__[key] = getter(self)
            return known
        setattr(cls, name, property(get) if isinstance(attr, property) else get)

    for cls in vars(_types).values():
        if isinstance(cls, type) and issubclass(cls, _types.ValType):
            for name in ("element", "fields", "elements", "cases", "payload", "ok", "err", "names", "_tagged", "_is_bytes"):
                if name in cls.__dict__:
                    memo(cls, name)
    add_classes_of = _types.VariantLikeType.add_classes

    def add_classes(self, s):
        known = self.__dict__.get("_realm_classes")
        if known is None:
            known = set()
            add_classes_of(self, known)
            self.__dict__["_realm_classes"] = known
        s |= known
    _types.VariantLikeType.add_classes = add_classes

    # A host function's type, read from the C API at each call (its parameters' types rebuilt
    # each time: most of a small call's cost), kept per function: one runner serves one component.
    from wasmtime.component import _enter, _linker
    known_types = {}

    @ffi.wasmtime_component_func_callback_t
    def func_impl(idx, context, ty_raw, args, nargs, results, nresults):
        def run(store):
            known = known_types.get(idx)
            if known is None:
                with _types.FuncType._from_ptr(ty_raw, owner=store) as fty:
                    known = known_types[idx] = ([ty for _, ty in fty.params], fty.result)
            params, result_ty = known
            if len(params) != nargs or nresults != (result_ty is not None):
                raise wasmtime.WasmtimeError("a host function called with a type it was not first called with")
            result = _linker.FUNCTIONS.get(idx or 0)(store, *[ty.convert_from_c(args[i]) for i, ty in enumerate(params)])
            if result_ty is not None:
                result_ty.convert_to_c(store, result, results)
        return _enter.catch_exceptions(context, run)

    _linker.func_impl = func_impl
    FAST.append(func_impl)  # the callback lives as long as the runner


FAST = []
fast_bytes()


class Ticker(threading.Thread):
    """One thread for every request's deadline (a thread started per request costs more than a
    small request): it moves the engine's epoch once the armed deadline passes, which traps the
    request's instance at its next function entry or loop header. Arming wakes it only when it
    sleeps with no deadline or past the new one: requests with one timeout come with later and
    later deadlines, so a busy runner's thread wakes once a timeout, not once a request."""

    def __init__(self, engine):
        super().__init__(daemon=True)
        self.engine = engine
        self.cond = threading.Condition()
        self.at = None
        self.wake = None  # when the thread wakes next; None: only when notified

    def arm(self, at):
        with self.cond:
            self.at = at
            if self.wake is None or at < self.wake:
                self.cond.notify()

    def disarm(self):
        with self.cond:
            self.at = None

    def run(self):
        with self.cond:
            while True:
                if self.at is None:
                    self.wake = None
                    self.cond.wait()
                    continue
                left = self.at - time.monotonic()
                if left > 0:
                    self.wake = self.at
                    self.cond.wait(left)
                    continue
                self.at = None
                self.engine.increment_epoch()


# Buffered: a request's records come in one read, not two per record.
STDIN = io.open(0, "rb", buffering=1 << 16, closefd=False)


def read_exact(n):
    parts = []
    while n > 0:
        b = STDIN.read(min(n, MAX_READ))
        if not b:
            raise EOFError("the job's input ended before the job did")
        parts.append(b)
        n -= len(b)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def records():
    """One batch of records, up to 'X', as (tag, bytes) pairs."""
    out = []
    while True:
        tag, n = struct.unpack(">BI", read_exact(5))
        value = read_exact(n)
        if tag == ord("X"):
            return out
        out.append((chr(tag), value))



# ---- the app ----

def handler_export(component, engine):
    """The component's wasi:http/incoming-handler@0.2.x export name, or None."""
    for name in component.type.exports(engine):
        if re.fullmatch(r"wasi:http/incoming-handler@0\.2\.\d+", name):
            return name
    return None


def load(job):
    """The engine, linker, component, the index of its handler's `handle`, fuel and deadline thread; or an error result."""
    fuel = int(job.get("F", b"0") or 0)
    engine = make_engine(fuel)
    try:
        component = Component(engine, job["W"])
    except wasmtime.WasmtimeError as e:
        return None, {"status": "error", "error": "WASM_INVALID", "message": trap_message(str(e))}
    export = handler_export(component, engine)
    if export is None:
        names = ", ".join(sorted(component.type.exports(engine))) or "nothing"
        return None, {"status": "error", "error": "WASM_UNSUPPORTED",
                      "message": f"the component exports {names}, not wasi:http/incoming-handler@0.2.x (the wasi:http/proxy world)"}
    linker = Linker(engine)
    define_io(linker)
    define_host(linker)
    define_http(linker)
    ticker = Ticker(engine)
    ticker.start()
    # `handle`'s index in the component, found once (an instance's lookup is two more calls a request).
    handle_index = component.get_export_index("handle", component.get_export_index(export))
    return (engine, linker, component, handle_index, fuel, ticker), None


def check(app, memory, timeout_ms):
    """Link the component once (no request): every import must be one this runner provides. Its
    start functions run, with a request's limits."""
    engine, linker, component, _, fuel, ticker = app
    deadline = time.monotonic() + timeout_ms / 1000
    H.STATE = Request("GET", "/", "http", "", [], b"", deadline, memory)
    ticker.arm(deadline)
    try:
        linker.instantiate(new_store(engine, memory, fuel), component)
    except Fail as e:
        return {"status": "error", "error": "WASM_INVALID", "message": f"while instantiated: {e}"}
    except wasmtime.WasmtimeError as e:
        text = str(e)
        if "wasm trap" in text or "fuel" in text:
            return {"status": "error", "error": "WASM_INVALID", "message": trap_message(text)}
        return {"status": "error", "error": "WASM_UNSUPPORTED", "message": text.strip().split("\n")[0]}
    except Exception as e:  # noqa: BLE001 - a start function's call the bindings could not take
        return {"status": "error", "error": "WASM_INVALID", "message": f"{type(e).__name__}: {e}"}
    finally:
        ticker.disarm()
    return {"status": "ready"}


STATM = []  # /proc/self/statm, opened once: read again from its start, it is made anew
PAGE = os.sysconf("SC_PAGE_SIZE")


def data_bytes():
    """The runner's private writable memory (statm's data: VmData and the stack), or None where
    /proc cannot be read. A store's linear memories are mapped in it as they grow (Wasmtime makes a
    reservation's pages writable at each memory.grow), so its growth during a request is the
    instance's memory. statm, not status: the kernel makes it for a fraction of the cost."""
    try:
        if not STATM:
            STATM.append(os.open("/proc/self/statm", os.O_RDONLY))
        return int(os.pread(STATM[0], 256, 0).split()[5]) * PAGE
    except (OSError, ValueError, IndexError):
        return None


def serve(app, memory, timeout_ms, req):
    """One request, its result with `memoryBytes`: how much the runner's memory grew while it ran
    (its instance's memories as they grew to, and what the host held for it), while the store was
    alive; none where /proc cannot be read."""
    before = data_bytes()
    store_box = []
    result = handle(app, memory, timeout_ms, req, store_box)
    after = data_bytes()
    store_box.clear()
    if before is not None and after is not None:
        result["memoryBytes"] = max(0, after - before)
    return result


def handle(app, memory, timeout_ms, req, store_box):
    engine, linker, component, handle_index, fuel, ticker = app
    fields = {"R": b"GET", "P": b"/", "S": b"http", "U": b"", "B": b""}
    headers = []
    for tag, value in req:
        if tag == "H":
            n, _, v = value.partition(b"\0")
            headers.append((n.decode("latin-1").lower(), v))
        else:
            fields[tag] = value
    deadline = time.monotonic() + timeout_ms / 1000
    H.STATE = Request(fields["R"].decode("latin-1"), fields["P"].decode("latin-1"), fields["S"].decode(),
                    fields["U"].decode("latin-1"), headers, fields["B"], deadline, memory)
    store = new_store(engine, memory, fuel)
    store_box.append(store)  # kept until serve has read the memory the request grew to
    ticker.arm(deadline)
    try:
        instance = linker.instantiate(store, component)
        func = instance.get_func(store, handle_index)
        func(store, own("incoming-request", Plain(consumed=False)), own("response-outparam", Plain()))
        func.post_return(store)
    except Fail as e:
        return {"status": "trap", "reason": e.reason, "message": str(e)}
    except wasmtime.WasmtimeError as e:
        text = str(e)
        return {"status": "trap", "reason": trap_reason(text), "message": trap_message(text)}
    except Exception as e:  # noqa: BLE001 - a value the component's call could not take: its failure, not the runner's
        return {"status": "trap", "reason": "trap", "message": f"{type(e).__name__}: {e}"}
    finally:
        ticker.disarm()
    if H.STATE.answered is None:
        return {"status": "error", "error": "APP_NO_RESPONSE", "message": "handle returned without setting a response (response-outparam.set)"}
    if H.STATE.answered[0] == "error":
        return {"status": "error", "error": "APP_ERROR_CODE", "message": H.STATE.answered[1]}
    if not H.STATE.finished:
        return {"status": "error", "error": "APP_BODY_UNFINISHED", "message": "the response body was not finished (outgoing-body.finish)"}
    return {"status": "exit", "code": 0}


def main():
    job = dict(records())
    memory = int(job.get("M", b"67108864"))
    timeout_ms = int(job.get("T", b"10000"))
    app, err = load(job)
    if err is None:
        err = check(app, memory, timeout_ms)
    frame(3, json.dumps(err).encode(), now=True)
    if err["status"] != "ready" or "C" in job:
        return
    while True:
        try:
            req = records()
        except EOFError:
            return
        frame(3, json.dumps(serve(app, memory, timeout_ms, req)).encode(), now=True)


main()
