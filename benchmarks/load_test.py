"""Load test on loopback: N concurrent clients posting 512-px JPEGs for a fixed time.

Each client keeps one connection open and sends the next photo as soon as the answer arrives. Counts every
status (a 5xx or a dropped connection fails the run) and reports requests/s, p50 and p99 latency.

    python benchmarks/load_test.py --model models/model.onnx --photos ../shared/data/mushrooms-real \
        --clients 8 --seconds 60
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from _service import Client, arguments, jpegs_512, multipart, report, service  # benchmarks/_service.py


def run_client(port: int, bodies: list[tuple[bytes, str]], seconds: float, offset: int, out: list) -> None:
    client = Client(port)
    statuses: Counter[int] = Counter()
    latencies = []
    deadline = time.perf_counter() + seconds
    i = offset
    while time.perf_counter() < deadline:
        body, content_type = bodies[i % len(bodies)]
        start = time.perf_counter()
        status = client.post(body, content_type)
        latencies.append(time.perf_counter() - start)
        statuses[status] += 1
        i += 1
    out.append((statuses, latencies))


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--distinct-photos", type=int, default=32)
    args = parser.parse_args()

    bodies = [multipart(photo) for photo in jpegs_512(args.photos, args.distinct_photos)]
    results: list = []
    with tempfile.TemporaryDirectory() as scratch, service(args.model, Path(scratch)) as port:
        threads = [
            threading.Thread(target=run_client, args=(port, bodies, args.seconds, k * 7, results))
            for k in range(args.clients)
        ]
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start

    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for client_statuses, client_latencies in results:
        statuses.update(client_statuses)
        latencies += client_latencies
    total = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500)
    figures = {
        "clients": args.clients,
        "seconds": round(elapsed, 1),
        "distinct_photos": len(bodies),
        "requests": total,
        "statuses": {str(status): n for status, n in sorted(statuses.items())},
        "server_errors_5xx": server_errors,
        "dropped_connections": statuses.get(0, 0),
        "requests_per_s": total / elapsed,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "max_ms": 1000 * max(latencies),
    }
    report(figures, args.out)
    if server_errors or statuses.get(0, 0) or statuses.get(200, 0) != total:
        sys.exit(1)


if __name__ == "__main__":
    main()
