#!/usr/bin/env python3
"""Scrapes /metrics of each given port on 127.0.0.1 once a second, as Prometheus would: one
process, one kept-alive connection per target, the body read in full. For ops/bench/queue.

    scrape.py PORT [PORT ...]      # runs until killed; a failed scrape is retried next second
"""

import http.client
import sys
import time


def main() -> int:
    ports = [int(p) for p in sys.argv[1:]]
    connections: dict[int, http.client.HTTPConnection] = {}
    while True:
        started = time.monotonic()
        for port in ports:
            try:
                connection = connections.get(port) or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connections[port] = connection
                connection.request("GET", "/metrics", headers={"Accept": "text/plain"})
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                connections.pop(port, None)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


if __name__ == "__main__":
    sys.exit(main())
