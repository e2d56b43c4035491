"""Connections and files that once stalled the service: what a good photo waits while they are held.

Two checks against ``python -m mushroom.serve`` in its own process on loopback:

- ``--idle`` connections that send nothing and ``--trickling`` ones that send a request head one byte at a
  time, held while a good photo is sent every 100 ms: the good photos' statuses and worst wait, and how many
  held sockets the server closed (head timeout);
- ``--bombs`` progressive 8000 x 8000 JPEGs (a few hundred KB, accepted: counted at their full size) plus
  as many with hundreds of scans and as many marker floods (refused from their structure), sent at once
  while ``/health`` and a good photo are timed: statuses, worst waits of both, peak memory growth.

    python benchmarks/hostile_connections.py --model models/model.onnx --photos ../shared/data/mushrooms-real
"""

from __future__ import annotations

import io
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from _service import (  # benchmarks/_service.py
    Client,
    arguments,
    jpegs_512,
    report,
    service_process,
    timed_post,
)
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.conftest
from tests.conftest import memory_mb


def progressive_bomb(scans: int = 0) -> bytes:
    """A smooth 8000 x 8000 progressive JPEG (small file, 64 MP), with ``scans`` extra copies of its last
    scan when asked."""
    gradient = Image.linear_gradient("L").resize((8000, 8000)).convert("RGB")
    buffer = io.BytesIO()
    gradient.save(buffer, format="JPEG", progressive=True, quality=50)
    data = buffer.getvalue()
    if scans:
        last = data.rindex(b"\xff\xda")
        data = data[:last] + data[last:-2] * (scans + 1) + b"\xff\xd9"
    return data


def held_connections(port: int, idle: int, trickling: int) -> dict:
    """``idle`` sockets that send nothing and ``trickling`` ones sending a request head a byte every 2 s."""
    sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(idle + trickling)]
    stop = threading.Event()

    def trickle(sock: socket.socket) -> None:
        for byte in b"POST /predict HTTP/1.1\r\nHost: x\r\n":
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                return
            time.sleep(2)

    threads = [threading.Thread(target=trickle, args=(sock,), daemon=True) for sock in sockets[idle:]]
    for thread in threads:
        thread.start()
    return {"sockets": sockets, "stop": stop}


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--idle", type=int, default=300)
    parser.add_argument("--trickling", type=int, default=100)
    parser.add_argument("--bombs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the sockets are held")
    args = parser.parse_args()
    good = jpegs_512(args.photos, 1)[0]
    figures: dict = {}
    with tempfile.TemporaryDirectory() as scratch, service_process(args.model, Path(scratch)) as (port, pid):
        held = held_connections(port, args.idle, args.trickling)
        statuses, waits = [], []
        end = time.perf_counter() + args.seconds
        while time.perf_counter() < end:
            status, seconds = timed_post(port, good)
            statuses.append(status)
            waits.append(seconds)
            time.sleep(0.1)
        closed = 0
        for sock in held["sockets"]:
            sock.setblocking(False)
            try:
                closed += sock.recv(65536, socket.MSG_PEEK) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        held["stop"].set()
        for sock in held["sockets"]:
            sock.close()
        figures["held_connections"] = {
            "idle": args.idle,
            "trickling": args.trickling,
            "held_s": args.seconds,
            "good_photos": len(statuses),
            "good_photos_200": statuses.count(200),
            "good_photo_worst_wait_s": round(max(waits), 3),
            "held_sockets_closed_by_the_server": closed,
        }

        accepted, many_scans = progressive_bomb(), progressive_bomb(scans=300)
        flood = good[:2] + b"\xff\xe1\x00\x02" * 2_000_000 + good[2:]
        resident_before, _ = memory_mb(pid)
        answers: list[int] = []
        files = [accepted] * args.bombs + [many_scans] * args.bombs + [flood] * args.bombs
        senders = [threading.Thread(target=lambda d=d: answers.append(timed_post(port, d)[0])) for d in files]
        for sender in senders:
            sender.start()
        health, good_waits = [], []
        client = Client(port)
        while any(sender.is_alive() for sender in senders):
            start = time.perf_counter()
            client.get("/health")
            health.append(time.perf_counter() - start)
            status, seconds = timed_post(port, good)
            good_waits.append(seconds)
            time.sleep(0.05)
        _, peak = memory_mb(pid)
        figures["bombs"] = {
            "progressive_8000x8000_bytes": len(accepted),
            "with_300_more_scans_bytes": len(many_scans),
            "marker_flood_bytes": len(flood),
            "sent_at_once": len(files),
            "statuses": sorted(answers),
            "health_worst_s": round(max(health, default=0), 3),
            "good_photo_worst_wait_s": round(max(good_waits, default=0), 3),
            "peak_memory_growth_mb": round(peak - resident_before),
            "resident_after_mb": round(memory_mb(pid)[0] - resident_before),
        }
    report(figures, args.out)


if __name__ == "__main__":
    main()
