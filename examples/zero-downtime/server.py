# A tiny HTTP server for socket activation: it takes its listening socket from runpm
# (LISTEN_FDS, descriptor 3) instead of binding it, so restarts refuse no connection.
import os
import signal
import socket

if os.environ.get("LISTEN_PID") != str(os.getpid()):
    raise SystemExit("not socket-activated: run me with `listen` in services.toml")
server = socket.socket(fileno=3)
# SIGTERM ends the loop between two requests: the one in flight is answered first.
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
server.settimeout(0.2)
while not stopping:
    try:
        conn, _ = server.accept()
    except (TimeoutError, InterruptedError):
        continue
    with conn:
        conn.settimeout(5)
        conn.recv(65536)
        body = b"hello from %d (%s)\n" % (os.getpid(), os.environ.get("GREETING", "").encode())
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + body)
