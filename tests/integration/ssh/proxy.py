#!/usr/bin/env python3
"""tests/integration/ssh/proxy.py PORTFILE [LOG] - a small HTTP CONNECT and SOCKS5
proxy on 127.0.0.1 for hpcport's SSH tests (the first hop through a proxy).

Listens on a free port, writes it to PORTFILE, and serves until killed. A
connection starting with byte 5 is SOCKS5 (no authentication, CONNECT by domain
name or IPv4), anything else an HTTP/1.1 CONNECT request. Each tunnel opened is
logged to LOG as "socks5 HOST PORT" or "http HOST PORT"."""
import socket
import struct
import sys
import threading


def pipe(a, b):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def log(kind, host, port):
    if len(sys.argv) > 2:
        with open(sys.argv[2], "a") as f:
            f.write("%s %s %d\n" % (kind, host, port))


def recv_exact(c, n):
    d = b""
    while len(d) < n:
        x = c.recv(n - len(d))
        if not x:
            raise OSError("short read")
        d += x
    return d


def serve(c):
    try:
        first = recv_exact(c, 1)
        if first == b"\x05":
            nm = recv_exact(c, 1)[0]
            methods = recv_exact(c, nm)
            if 0 not in methods:
                c.sendall(b"\x05\xff")
                return
            c.sendall(b"\x05\x00")
            ver, cmd, _, atyp = recv_exact(c, 4)
            if atyp == 3:
                host = recv_exact(c, recv_exact(c, 1)[0]).decode()
            elif atyp == 1:
                host = socket.inet_ntoa(recv_exact(c, 4))
            else:
                c.sendall(b"\x05\x08\x00\x01" + b"\0" * 6)
                return
            port = struct.unpack(">H", recv_exact(c, 2))[0]
            try:
                u = socket.create_connection((host, port), timeout=10)
            except OSError:
                c.sendall(b"\x05\x05\x00\x01" + b"\0" * 6)
                return
            u.settimeout(None)
            c.sendall(b"\x05\x00\x00\x01" + b"\0" * 6)
            log("socks5", host, port)
        else:
            req = first
            while b"\r\n\r\n" not in req:
                x = c.recv(1)
                if not x:
                    return
                req += x
            line = req.split(b"\r\n")[0].decode()
            method, target, _ = line.split(" ", 2)
            if method != "CONNECT":
                c.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            host, port = target.rsplit(":", 1)
            host = host.strip("[]")
            try:
                u = socket.create_connection((host, int(port)), timeout=10)
            except OSError:
                c.sendall(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                return
            u.settimeout(None)
            c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            log("http", host, int(port))
        t = threading.Thread(target=pipe, args=(u, c), daemon=True)
        t.start()
        pipe(c, u)
        t.join()
    except OSError:
        pass
    finally:
        c.close()


def main():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()


main()
