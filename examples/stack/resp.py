"""A tiny Redis client: one command at a time over a raw socket, speaking RESP.

Enough for the example stack (INCR, GET, RPUSH, BLPOP); use redis-py for anything real.
"""

import os
import socket


class Redis:
    def __init__(self, host="127.0.0.1", port=None):
        port = int(port or os.environ.get("REDIS_PORT", "6390"))
        self.sock = socket.create_connection((host, port))
        self.file = self.sock.makefile("rb")

    def command(self, *args):
        """Sends one command (an array of bulk strings) and returns the decoded reply."""
        parts = [str(a).encode() for a in args]
        out = b"*%d\r\n" % len(parts)
        for p in parts:
            out += b"$%d\r\n%s\r\n" % (len(p), p)
        self.sock.sendall(out)
        return self._reply()

    def _reply(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("redis closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":  # simple string
            return rest.decode()
        if kind == b"-":  # error
            raise RuntimeError(rest.decode())
        if kind == b":":  # integer
            return int(rest)
        if kind == b"$":  # bulk string, or nil
            n = int(rest)
            return None if n < 0 else self.file.read(n + 2)[:-2].decode()
        if kind == b"*":  # array, or nil
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise RuntimeError(f"unexpected reply {line!r}")
