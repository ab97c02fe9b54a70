/**
 * A WebSocket echo server for tests, with nothing but python's stdlib: run it in a sandbox as
 * `python3 -c WS_ECHO PORT`; it listens on 127.0.0.1:PORT, prints "listening", and answers each
 * text frame (< 64 KiB) with "echo:" and the frame.
 */
export const WS_ECHO = String.raw`
import base64, hashlib, socket, struct, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(8)
print("listening", flush=True)
def read(c, n):
    b = b""
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d: raise EOFError
        b += d
    return b
while True:
    c, _ = s.accept()
    try:
        h = b""
        while b"\r\n\r\n" not in h: h += read(c, 1)
        key = [l.split(b":", 1)[1].strip() for l in h.split(b"\r\n") if l.lower().startswith(b"sec-websocket-key:")][0]
        acc = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + acc + b"\r\n\r\n")
        while True:
            b0, b1 = read(c, 2)
            n = b1 & 127
            if n == 126: n = struct.unpack(">H", read(c, 2))[0]
            mask = read(c, 4)
            data = bytes(x ^ mask[i % 4] for i, x in enumerate(read(c, n)))
            if b0 & 15 == 8: break
            out = b"echo:" + data
            c.sendall(bytes([0x81, 126]) + struct.pack(">H", len(out)) + out if len(out) > 125 else bytes([0x81, len(out)]) + out)
    except EOFError:
        pass
    c.close()
`;
