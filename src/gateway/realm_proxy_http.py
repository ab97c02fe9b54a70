"""wasi:http/types and wasi:http/outgoing-handler for realm's wasi:http component runner
(http-component.py), as Wasmtime host resources and functions: the incoming request, fields, the
response and its body. Outgoing requests can be built but never sent (apps have no network).
"""
import re

from wasmtime.component import ResourceType, Variant

import realm_proxy_host as H
from realm_proxy_host import (
    RT, VERSION, Fail, Fields, InputStream, OutgoingBody, OutgoingResponse, OutputStream, Plain, Pollable,
    dropped, get, own, send_head, take,
)

TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# Hop-by-hop headers the gateway's own HTTP server sets; a component may not.
FORBIDDEN = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "http2-settings"}


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
                m = H.STATE.method.lower()
                known = {"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"}
                return Variant(m) if m in known else Variant("other", H.STATE.method)

            def consume(s, r):
                req = get(s, r, Plain)
                if req.consumed:
                    return None
                req.consumed = True
                return own("incoming-body", Plain(stream_taken=False))

            def scheme(s, r):
                get(s, r, Plain)
                return Variant("HTTPS") if H.STATE.scheme == "https" else Variant("HTTP")

            t.add_func("[method]incoming-request.method", method)
            t.add_func("[method]incoming-request.path-with-query", lambda s, r: (get(s, r, Plain), H.STATE.path)[1])
            t.add_func("[method]incoming-request.scheme", scheme)
            t.add_func("[method]incoming-request.authority", lambda s, r: (get(s, r, Plain), H.STATE.authority)[1])
            t.add_func("[method]incoming-request.headers",
                       lambda s, r: (get(s, r, Plain), own("fields", Fields(list(H.STATE.headers), False)))[1])
            t.add_func("[method]incoming-request.consume", consume)

            def body_stream(s, r):
                b = get(s, r, Plain)
                if b.stream_taken:
                    return None
                b.stream_taken = True
                return own("input-stream", InputStream(H.STATE.body))

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
                if H.STATE.answered and H.STATE.answered[0] == "ok" and H.STATE.answered[3] is b:
                    H.STATE.finished = True
                return None

            def outparam_set(s, param, response):
                take(s, param)
                if H.STATE.answered:
                    raise Fail("trap", "response-outparam.set called twice")
                if isinstance(response, Variant):
                    H.STATE.answered = ("error", f"the component answered with error-code {response.tag}"
                                      + (f": {response.payload}" if isinstance(response.payload, str) else ""))
                    return None
                resp = take(s, response, OutgoingResponse)
                headers = [[n, v.decode("latin-1")] for n, v in resp.headers.entries]
                H.STATE.answered = ("ok", resp.status, headers, resp.body)
                # A response whose body was never asked for has none (a 204, a redirect).
                if resp.body is None or resp.body.finished:
                    H.STATE.finished = True
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

