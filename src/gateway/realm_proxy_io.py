"""wasi:io (error, poll, streams), wasi:clocks, wasi:random and wasi:cli's stdio for realm's
wasi:http component runner (http-component.py), as Wasmtime host resources and functions.
Streams are the request's body (read) and the response's body or the app's log (written); a wait
on a clock never outlasts the request's deadline.
"""
import os
import time

import wasmtime
from wasmtime.component import ResourceType, Variant

import realm_proxy_host as H
from realm_proxy_host import MAX_READ, RT, VERSION, Fail, InputStream, OutputStream, Pollable, dropped, emit, flush, get, own

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
    flush()  # what the component wrote so far goes out while it waits
    now = time.monotonic_ns()
    deadline_ns = int(H.STATE.deadline * 1e9)
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
                if n > H.STATE.memory:
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

