"""The example stack's web app: counts visits in redis and queues jobs for the worker.

    GET /                 increments the `hits` counter and shows it
    GET /enqueue?job=NAME pushes NAME onto the `jobs` list (the worker takes it from there)

Standard library only. Listens on 127.0.0.1:$PORT (8090).
"""

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

from resp import Redis

redis = Redis()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/":
            hits = redis.command("INCR", "hits")
            self.reply(200, f"hits: {hits}\n")
        elif url.path == "/enqueue":
            job = parse_qs(url.query).get("job", ["hello"])[0]
            queued = redis.command("RPUSH", "jobs", job)
            self.reply(202, f"queued {job} ({queued} waiting)\n")
        else:
            self.reply(404, "not found\n")

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, fmt, *args):
        # One line per request on stdout: runpm prefixes it with `web | `.
        print(f"{self.command} {self.path} -> {fmt % args}", flush=True)


def main():
    port = int(os.environ.get("PORT", "8090"))
    server = HTTPServer(("127.0.0.1", port), Handler)
    # runpm stops the service with SIGTERM (its stop_signal): leave quietly, exit code 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on http://127.0.0.1:{port}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
