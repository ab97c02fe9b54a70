"""The per-request state of realm's wasi:http component runner (http-component.py): the
frames it writes, the request, and the host resources the component holds — each a rep (an index
into the request's table) of one of the resource types below. A new Request per request: nothing
of one request's resources reaches the next.
"""
import json
import os
import struct
import time

from wasmtime.component import ResourceHost

VERSION = "0.2.12"  # Wasmtime's linker takes any 0.2.x import for a 0.2.y definition
MAX_READ = 1 << 20
MAX_PENDING = 64 << 20  # the gateway's own limit of a response (runners.ts MAX_OUTPUT)

OUT = []  # frames not yet written: one write per request for a small answer
OUT_SIZE = [0]
FLUSH_AT = 64 << 10


def flush():
    data = b"".join(OUT)
    OUT.clear()
    OUT_SIZE[0] = 0
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]


def frame(kind, payload, now=False):
    OUT.append(struct.pack(">BI", kind, len(payload)) + payload)
    OUT_SIZE[0] += len(payload) + 5
    if now or OUT_SIZE[0] >= FLUSH_AT:
        flush()



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

