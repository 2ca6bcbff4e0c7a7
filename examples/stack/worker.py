"""The example stack's worker: takes jobs from the redis list `jobs` and processes them.

Standard library only. Each job is "processed" (a short sleep) and counted in `processed`.
"""

import signal
import sys
import time

from resp import Redis

stopping = False


def stop(*_):
    # SIGTERM from runpm: finish the current job, then exit 0.
    global stopping
    stopping = True


def main():
    signal.signal(signal.SIGTERM, stop)
    redis = Redis()
    print("waiting for jobs on redis list `jobs`", flush=True)
    while not stopping:
        # Block for at most 1 s, so a stop request is noticed soon.
        item = redis.command("BLPOP", "jobs", 1)
        if item is None:
            continue
        _, job = item
        time.sleep(0.1)  # the "work"
        done = redis.command("INCR", "processed")
        print(f"processed job {job} ({done} so far)", flush=True)
    print("stopping: no job in progress", flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
