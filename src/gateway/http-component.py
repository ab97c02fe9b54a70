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
import json
import os
import re
import struct
import sys
import threading
import time

sys.path.insert(0, sys.argv[1])
import wasmtime  # noqa: E402
from wasmtime.component import Linker, Component, ResourceHost, ResourceType, Variant  # noqa: E402



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


fast_bytes()
VERSION = "0.2.12"  # Wasmtime's linker takes any 0.2.x import for a 0.2.y definition
OUT_LOCK = threading.Lock()
MAX_READ = 1 << 20
MAX_PENDING = 64 << 20  # the gateway's own limit of a response (runners.ts MAX_OUTPUT)
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Hop-by-hop headers the gateway's own HTTP server sets; a component may not.
FORBIDDEN = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "http2-settings"}


def frame(kind, payload):
    data = struct.pack(">BI", kind, len(payload)) + payload
    with OUT_LOCK:
        view = memoryview(data)
        while view:
            view = view[os.write(1, view):]


def read_exact(n):
    chunks = []
    while n > 0:
        b = os.read(0, min(n, MAX_READ))
        if not b:
            raise EOFError
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def records():
    """One batch of records, up to 'X', as (tag, bytes) pairs."""
    out = []
    while True:
        tag, n = struct.unpack(">BI", read_exact(5))
        value = read_exact(n)
        if tag == ord("X"):
            return out
        out.append((chr(tag), value))


class Fail(Exception):
    """A request's host-side end: the deadline passed in a host call, or a limit was broken."""

    def __init__(self, reason, message):
        super().__init__(message)
        self.reason = reason


# ---- per-request state: resources are host resources whose rep indexes this table ----

class Request:
    def __init__(self, method, path, scheme, authority, headers, body, deadline, memory):
        self.method, self.path, self.scheme, self.authority = method, path, scheme, authority
        self.headers, self.body = headers, body
        self.deadline, self.memory = deadline, memory
        self.table = {}
        self.next = 1
        self.head_sent = False
        self.pending = []  # body written before the head went out
        self.pending_bytes = 0
        self.answered = None  # ("ok", status) or ("error", message)
        self.finished = False
        self.fail = None

    def add(self, obj):
        rep = self.next
        self.next += 1
        self.table[rep] = obj
        return rep


STATE = None


class Fields:
    def __init__(self, entries, mutable=True):
        self.entries = entries  # [(name str lowercased, value bytes)]
        self.mutable = mutable


class Pollable:
    def __init__(self, at=None):
        self.at = at  # monotonic ns when ready; None: always ready


class InputStream:
    def __init__(self, data):
        self.data, self.pos = data, 0


class OutputStream:
    def __init__(self, sink):
        self.sink = sink  # "body", 1 or 2 (log)
        self.closed = False


class OutgoingResponse:
    def __init__(self, headers):
        self.status = 200
        self.headers = headers
        self.body_taken = False
        self.body = None


class OutgoingBody:
    def __init__(self):
        self.stream_taken = False
        self.finished = False


class Plain:
    """A resource with no behaviour of its own here (io errors, outgoing requests, options, bodies read)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


RT = {}
for i, name in enumerate([
    "pollable", "error", "input-stream", "output-stream", "fields", "incoming-request", "outgoing-request",
    "request-options", "response-outparam", "incoming-response", "incoming-body", "future-trailers",
    "outgoing-response", "outgoing-body", "future-incoming-response",
]):
    RT[name] = i + 1


def own(kind, obj):
    return ResourceHost.own(STATE.add(obj), RT[kind])


def get(store, res, cls=object):
    obj = STATE.table.get(res.to_host(store).rep)
    if not isinstance(obj, cls):
        raise Fail("trap", "a resource handle of the wrong kind or already dropped")
    return obj


def take(store, res, cls=object):
    """An own<> argument: the guest gave it up, so it leaves the table."""
    rep = res.to_host(store).rep
    obj = STATE.table.pop(rep, None)
    if not isinstance(obj, cls):
        raise Fail("trap", "a resource handle of the wrong kind or already dropped")
    return obj


def dropped(store, rep):
    obj = STATE.table.pop(rep, None) if STATE else None
    if isinstance(obj, OutputStream):
        obj.closed = True


def check_deadline():
    if time.monotonic() >= STATE.deadline:
        raise Fail("deadline", "past its deadline")


def send_head():
    status, headers = STATE.answered[1], STATE.answered[2]
    frame(5, json.dumps({"status": status, "headers": headers}).encode())
    STATE.head_sent = True
    for chunk in STATE.pending:
        frame(1, chunk)
    STATE.pending = []


def emit(sink, data):
    if not data:
        return
    if sink == "body":
        if STATE.head_sent:
            frame(1, bytes(data))
        else:
            STATE.pending_bytes += len(data)
            if STATE.pending_bytes > MAX_PENDING:
                raise Fail("trap", f"wrote more than {MAX_PENDING} bytes of body before setting its response")
            STATE.pending.append(bytes(data))
    else:
        frame(2, bytes(data))


# ---- the interfaces ----

def define_io(linker):
    with linker.root() as root:
        with root.add_instance(f"wasi:io/error@{VERSION}") as e:
            e.add_resource("error", ResourceType.host(RT["error"]), dropped)
            e.add_func("[method]error.to-debug-string", lambda s, r: get(s, r).message)
        with root.add_instance(f"wasi:io/poll@{VERSION}") as p:
            p.add_resource("pollable", ResourceType.host(RT["pollable"]), dropped)

            def ready(s, r):
                at = get(s, r, Pollable).at
                return at is None or time.monotonic_ns() >= at

            def block(s, r):
                at = get(s, r, Pollable).at
                wait_until(at)

            def poll(s, items):
                if not items:
                    raise Fail("trap", "poll of an empty list")
                ats = [get(s, r, Pollable).at for r in items]
                now = time.monotonic_ns()
                ready_now = [i for i, at in enumerate(ats) if at is None or at <= now]
                if ready_now:
                    return ready_now
                first = min(ats)
                wait_until(first)
                return [i for i, at in enumerate(ats) if at <= first]

            p.add_func("[method]pollable.ready", ready)
            p.add_func("[method]pollable.block", block)
            p.add_func("poll", poll)
        with root.add_instance(f"wasi:io/streams@{VERSION}") as st:
            st.add_resource("input-stream", ResourceType.host(RT["input-stream"]), dropped)
            st.add_resource("output-stream", ResourceType.host(RT["output-stream"]), dropped)
            # stream-error's `closed` is None (the bindings lower a variant untagged when its cases'
            # Python types differ); result<_, stream-error> is tagged, as its cases are both None.
            closed = None
            ok, err_closed = Variant("ok"), Variant("err", None)

            def read(s, r, n):
                inp = get(s, r, InputStream)
                if inp.pos >= len(inp.data):
                    return closed
                chunk = inp.data[inp.pos:inp.pos + min(n, MAX_READ)]
                inp.pos += len(chunk)
                return chunk

            def skip(s, r, n):
                inp = get(s, r, InputStream)
                if inp.pos >= len(inp.data):
                    return closed
                k = min(n, len(inp.data) - inp.pos)
                inp.pos += k
                return k

            def check_write(s, r):
                out = get(s, r, OutputStream)
                return closed if out.closed else MAX_READ

            def write(s, r, data):
                out = get(s, r, OutputStream)
                if out.closed:
                    return err_closed
                if len(data) > MAX_READ:
                    raise Fail("trap", "a write of more than check-write allowed")
                emit(out.sink, data)
                return ok

            def flush(s, r):
                return err_closed if get(s, r, OutputStream).closed else ok

            def zeroes(s, r, n):
                if n > MAX_READ:
                    raise Fail("trap", "write-zeroes of more than check-write allowed")
                return write(s, r, bytes(n))

            def splice(s, r, src, n):
                out = get(s, r, OutputStream)
                data = read(s, src, min(n, MAX_READ))
                if data is None or out.closed:
                    return closed
                emit(out.sink, data)
                return len(data)

            for name, fn in [("read", read), ("blocking-read", read), ("skip", skip), ("blocking-skip", skip)]:
                st.add_func(f"[method]input-stream.{name}", fn)
            st.add_func("[method]input-stream.subscribe", lambda s, r: own("pollable", Pollable()))
            for name, fn in [("check-write", check_write), ("write", write), ("blocking-write-and-flush", write),
                             ("flush", flush), ("blocking-flush", flush), ("write-zeroes", zeroes),
                             ("blocking-write-zeroes-and-flush", zeroes), ("splice", splice), ("blocking-splice", splice)]:
                st.add_func(f"[method]output-stream.{name}", fn)
            st.add_func("[method]output-stream.subscribe", lambda s, r: own("pollable", Pollable()))


def wait_until(at):
    """Sleep to a monotonic ns instant, but not past the request's deadline (which ends it)."""
    if at is None:
        return
    now = time.monotonic_ns()
    deadline_ns = int(STATE.deadline * 1e9)
    if at > deadline_ns:
        time.sleep(max(0, deadline_ns - now) / 1e9)
        raise Fail("deadline", "past its deadline (waiting on a clock)")
    if at > now:
        time.sleep((at - now) / 1e9)


def define_host(linker):
    with linker.root() as root:
        with root.add_instance(f"wasi:clocks/monotonic-clock@{VERSION}") as m:
            m.add_func("now", lambda s: time.monotonic_ns())
            m.add_func("resolution", lambda s: 1)
            m.add_func("subscribe-instant", lambda s, at: own("pollable", Pollable(at)))
            m.add_func("subscribe-duration", lambda s, d: own("pollable", Pollable(time.monotonic_ns() + d)))
        with root.add_instance(f"wasi:clocks/wall-clock@{VERSION}") as w:
            def datetime(ns):
                d = wasmtime.component.Record()
                d.seconds, d.nanoseconds = ns // 10**9, ns % 10**9
                return d

            def now(s):
                return datetime(time.time_ns())

            def resolution(s):
                return datetime(1)

            w.add_func("now", now)
            w.add_func("resolution", resolution)
        with root.add_instance(f"wasi:random/random@{VERSION}") as r:
            def random_bytes(s, n):
                if n > STATE.memory:
                    raise Fail("trap", "asked for more random bytes than its memory cap")
                return os.urandom(n)

            r.add_func("get-random-bytes", random_bytes)
            r.add_func("get-random-u64", lambda s: int.from_bytes(os.urandom(8), "little"))
        for name, sink in [("stdout", 2), ("stderr", 2), ("stdin", None)]:
            with root.add_instance(f"wasi:cli/{name}@{VERSION}") as c:
                if sink is None:
                    c.add_func("get-stdin", lambda s: own("input-stream", InputStream(b"")))
                else:
                    c.add_func(f"get-{name}", lambda s, k=sink: own("output-stream", OutputStream(k)))


def valid_field(name, value):
    return TOKEN.match(name.encode()) is not None and not any(c in value for c in b"\r\n\0")


def define_http(linker):
    with linker.root() as root:
        with root.add_instance(f"wasi:http/types@{VERSION}") as t:
            for name in ["fields", "incoming-request", "outgoing-request", "request-options", "response-outparam",
                         "incoming-response", "incoming-body", "future-trailers", "outgoing-response",
                         "outgoing-body", "future-incoming-response"]:
                t.add_resource(name, ResourceType.host(RT[name]), dropped)
            t.add_func("http-error-code", lambda s, e: None)

            # fields
            def f_check(f, name, values):
                if not f.mutable:
                    return Variant("immutable")
                if not all(valid_field(name, v) for v in values):
                    return Variant("invalid-syntax")
                if name.lower() in FORBIDDEN:
                    return Variant("forbidden")
                return None

            def from_list(s, entries):
                for n, v in entries:
                    err = f_check(Fields([]), n, [v])
                    if err:
                        return err
                return own("fields", Fields([(n.lower(), bytes(v)) for n, v in entries]))

            def f_get(s, r, name):
                return [v for n, v in get(s, r, Fields).entries if n == name.lower()]

            def f_set(s, r, name, values):
                f = get(s, r, Fields)
                err = f_check(f, name, values)
                if err:
                    return err
                f.entries = [(n, v) for n, v in f.entries if n != name.lower()] + [(name.lower(), bytes(v)) for v in values]
                return None

            def f_delete(s, r, name):
                f = get(s, r, Fields)
                if not f.mutable:
                    return Variant("immutable")
                f.entries = [(n, v) for n, v in f.entries if n != name.lower()]
                return None

            def f_append(s, r, name, value):
                f = get(s, r, Fields)
                err = f_check(f, name, [value])
                if err:
                    return err
                f.entries.append((name.lower(), bytes(value)))
                return None

            t.add_func("[constructor]fields", lambda s: own("fields", Fields([])))
            t.add_func("[static]fields.from-list", from_list)
            t.add_func("[method]fields.get", f_get)
            t.add_func("[method]fields.has", lambda s, r, name: bool(f_get(s, r, name)))
            t.add_func("[method]fields.set", f_set)
            t.add_func("[method]fields.delete", f_delete)
            t.add_func("[method]fields.append", f_append)
            t.add_func("[method]fields.entries", lambda s, r: [(n, v) for n, v in get(s, r, Fields).entries])
            t.add_func("[method]fields.clone", lambda s, r: own("fields", Fields(list(get(s, r, Fields).entries))))

            # the incoming request
            def method(s, r):
                get(s, r, Plain)
                m = STATE.method.lower()
                known = {"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"}
                return Variant(m) if m in known else Variant("other", STATE.method)

            def consume(s, r):
                req = get(s, r, Plain)
                if req.consumed:
                    return None
                req.consumed = True
                return own("incoming-body", Plain(stream_taken=False))

            def scheme(s, r):
                get(s, r, Plain)
                return Variant("HTTPS") if STATE.scheme == "https" else Variant("HTTP")

            t.add_func("[method]incoming-request.method", method)
            t.add_func("[method]incoming-request.path-with-query", lambda s, r: (get(s, r, Plain), STATE.path)[1])
            t.add_func("[method]incoming-request.scheme", scheme)
            t.add_func("[method]incoming-request.authority", lambda s, r: (get(s, r, Plain), STATE.authority)[1])
            t.add_func("[method]incoming-request.headers",
                       lambda s, r: (get(s, r, Plain), own("fields", Fields(list(STATE.headers), False)))[1])
            t.add_func("[method]incoming-request.consume", consume)

            def body_stream(s, r):
                b = get(s, r, Plain)
                if b.stream_taken:
                    return None
                b.stream_taken = True
                return own("input-stream", InputStream(STATE.body))

            t.add_func("[method]incoming-body.stream", body_stream)
            t.add_func("[static]incoming-body.finish", lambda s, r: (take(s, r), own("future-trailers", Plain()))[1])
            t.add_func("[method]future-trailers.subscribe", lambda s, r: own("pollable", Pollable()))
            t.add_func("[method]future-trailers.get", lambda s, r: Variant("ok", None))

            # the response
            def resp_new(s, headers):
                f = take(s, headers, Fields)
                return own("outgoing-response", OutgoingResponse(f))

            def set_status(s, r, code):
                resp = get(s, r, OutgoingResponse)
                if not 100 <= code <= 999:
                    return Variant("err")
                resp.status = code
                return Variant("ok")

            def resp_body(s, r):
                resp = get(s, r, OutgoingResponse)
                if resp.body_taken:
                    return None
                resp.body_taken = True
                resp.body = OutgoingBody()
                return own("outgoing-body", resp.body)

            def body_write(s, r):
                b = get(s, r, OutgoingBody)
                if b.stream_taken:
                    return None
                b.stream_taken = True
                return own("output-stream", OutputStream("body"))

            def body_finish(s, r, trailers):
                b = take(s, r, OutgoingBody)
                if trailers is not None:
                    take(s, trailers, Fields)  # HTTP/1.1 responses here carry no trailers
                b.finished = True
                if STATE.answered and STATE.answered[0] == "ok" and STATE.answered[3] is b:
                    STATE.finished = True
                return None

            def outparam_set(s, param, response):
                take(s, param)
                if STATE.answered:
                    raise Fail("trap", "response-outparam.set called twice")
                if isinstance(response, Variant):
                    STATE.answered = ("error", f"the component answered with error-code {response.tag}"
                                      + (f": {response.payload}" if isinstance(response.payload, str) else ""))
                    return None
                resp = take(s, response, OutgoingResponse)
                headers = [[n, v.decode("latin-1")] for n, v in resp.headers.entries]
                STATE.answered = ("ok", resp.status, headers, resp.body)
                # A response whose body was never asked for has none (a 204, a redirect).
                if resp.body is None or resp.body.finished:
                    STATE.finished = True
                send_head()
                return None

            t.add_func("[constructor]outgoing-response", resp_new)
            t.add_func("[method]outgoing-response.status-code", lambda s, r: get(s, r, OutgoingResponse).status)
            t.add_func("[method]outgoing-response.set-status-code", set_status)
            t.add_func("[method]outgoing-response.headers", lambda s, r: own("fields", get(s, r, OutgoingResponse).headers))
            t.add_func("[method]outgoing-response.body", resp_body)
            t.add_func("[method]outgoing-body.write", body_write)
            t.add_func("[static]outgoing-body.finish", body_finish)
            t.add_func("[static]response-outparam.set", outparam_set)

            # Outgoing requests can be built (libraries do it eagerly) but never sent: apps have no network.
            def oreq_new(s, headers):
                return own("outgoing-request", Plain(headers=take(s, headers, Fields), method=Variant("get"), path=None,
                                                     scheme=None, authority=None, body_taken=False))

            def oreq_body(s, r):
                req = get(s, r, Plain)
                if req.body_taken:
                    return None
                req.body_taken = True
                return own("outgoing-body", OutgoingBody())

            def setter(field):
                def fn(s, r, value):
                    setattr(get(s, r, Plain), field, value)
                    return Variant("ok")
                return fn

            t.add_func("[constructor]outgoing-request", oreq_new)
            t.add_func("[method]outgoing-request.body", oreq_body)
            for field, wit in [("method", "method"), ("path", "path-with-query"), ("scheme", "scheme"), ("authority", "authority")]:
                t.add_func(f"[method]outgoing-request.{wit}", lambda s, r, f=field: getattr(get(s, r, Plain), f))
                t.add_func(f"[method]outgoing-request.set-{wit}", setter(field))
            t.add_func("[method]outgoing-request.headers", lambda s, r: own("fields", get(s, r, Plain).headers))
            t.add_func("[constructor]request-options", lambda s: own("request-options", Plain(t={})))
            for name in ["connect-timeout", "first-byte-timeout", "between-bytes-timeout"]:
                t.add_func(f"[method]request-options.{name}", lambda s, r, n=name: get(s, r, Plain).t.get(n))

                def set_timeout(s, r, d, n=name):
                    get(s, r, Plain).t[n] = d
                    return Variant("ok")
                t.add_func(f"[method]request-options.set-{name}", set_timeout)
            # Never made (no request is ever sent), but part of the interface.
            t.add_func("[method]incoming-response.status", lambda s, r: get(s, r, Plain).status)
            t.add_func("[method]incoming-response.headers", lambda s, r: own("fields", Fields([], False)))
            t.add_func("[method]incoming-response.consume", lambda s, r: None)
            t.add_func("[method]future-incoming-response.subscribe", lambda s, r: own("pollable", Pollable()))
            t.add_func("[method]future-incoming-response.get", lambda s, r: None)
        with root.add_instance(f"wasi:http/outgoing-handler@{VERSION}") as o:
            def handle(s, req, options):
                take(s, req)
                if options is not None:
                    take(s, options)
                return Variant("HTTP-request-denied")

            o.add_func("handle", handle)


# ---- the app ----

def make_engine(fuel):
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.consume_fuel = fuel
    config.cranelift_opt_level = "speed"
    config.parallel_compilation = False
    config.wasm_component_model = True
    return wasmtime.Engine(config)


def handler_export(component, engine):
    """The component's wasi:http/incoming-handler@0.2.x export name, or None."""
    for name in component.type.exports(engine):
        if re.fullmatch(r"wasi:http/incoming-handler@0\.2\.\d+", name):
            return name
    return None


def trap_message(text):
    cause = text.split("Caused by:")[-1].strip()
    return cause[len("wasm trap: "):] if cause.startswith("wasm trap: ") else cause


def load(job):
    """The engine, linker, component and handler export name; or an error result."""
    fuel = int(job.get("F", b"0") or 0)
    engine = make_engine(bool(fuel))
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
    return (engine, linker, component, export, fuel), None


def new_store(engine, memory, fuel):
    store = wasmtime.Store(engine)
    store.set_limits(memory_size=memory, table_elements=1 << 20, instances=64, tables=64, memories=16)
    if fuel:
        store.set_fuel(fuel)
    store.set_epoch_deadline(1)
    return store


def check(app, memory):
    """Link the component once (no request): every import must be one this runner provides."""
    global STATE
    engine, linker, component, _, fuel = app
    STATE = Request("GET", "/", "http", "", [], b"", time.monotonic() + 10, memory)
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
    return {"status": "ready"}


def serve(app, memory, timeout_ms, req):
    global STATE
    engine, linker, component, export, fuel = app
    fields = {"R": b"GET", "P": b"/", "S": b"http", "U": b"", "B": b""}
    headers = []
    for tag, value in req:
        if tag == "H":
            n, _, v = value.partition(b"\0")
            headers.append((n.decode("latin-1").lower(), v))
        else:
            fields[tag] = value
    deadline = time.monotonic() + timeout_ms / 1000
    STATE = Request(fields["R"].decode("latin-1"), fields["P"].decode("latin-1"), fields["S"].decode(),
                    fields["U"].decode("latin-1"), headers, fields["B"], deadline, memory)
    store = new_store(engine, memory, fuel)
    timer = threading.Timer(timeout_ms / 1000, engine.increment_epoch)
    timer.daemon = True
    timer.start()
    try:
        instance = linker.instantiate(store, component)
        func = instance.get_func(store, instance.get_export_index(store, "handle", instance.get_export_index(store, export)))
        func(store, own("incoming-request", Plain(consumed=False)), own("response-outparam", Plain()))
        func.post_return(store)
    except Fail as e:
        return {"status": "trap", "reason": e.reason, "message": str(e)}
    except wasmtime.WasmtimeError as e:
        text = str(e)
        reason = "fuel" if "all fuel consumed" in text else "deadline" if "wasm trap: interrupt" in text else "trap"
        cause = STATE.fail
        if cause is None and isinstance(e.__cause__, Fail):
            cause = e.__cause__
        if isinstance(cause, Fail):
            return {"status": "trap", "reason": cause.reason, "message": str(cause)}
        return {"status": "trap", "reason": reason, "message": trap_message(text)}
    except Exception as e:  # noqa: BLE001 - a value the component's call could not take: its failure, not the runner's
        return {"status": "trap", "reason": "trap", "message": f"{type(e).__name__}: {e}"}
    finally:
        timer.cancel()
    if STATE.answered is None:
        return {"status": "error", "error": "APP_NO_RESPONSE", "message": "handle returned without setting a response (response-outparam.set)"}
    if STATE.answered[0] == "error":
        return {"status": "error", "error": "APP_ERROR_CODE", "message": STATE.answered[1]}
    if not STATE.finished:
        return {"status": "error", "error": "APP_BODY_UNFINISHED", "message": "the response body was not finished (outgoing-body.finish)"}
    return {"status": "exit", "code": 0}


def main():
    job = dict(records())
    memory = int(job.get("M", b"67108864"))
    timeout_ms = int(job.get("T", b"10000"))
    app, err = load(job)
    if err is None:
        err = check(app, memory)
    frame(3, json.dumps(err).encode())
    if err["status"] != "ready" or "C" in job:
        return
    while True:
        try:
            req = records()
        except EOFError:
            return
        frame(3, json.dumps(serve(app, memory, timeout_ms, req)).encode())


main()
