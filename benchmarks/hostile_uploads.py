"""Hostile uploads against the service: what they get, what a good photo sent meanwhile waits, and memory.

Three checks, each against ``python -m mushroom.serve`` in its own process on loopback:

- thin images (65535 x 1 and 1 x 20000 PNGs, a few hundred bytes): status and time;
- ``--large`` 8000 x 8000 RGBA PNGs (250 KB each, within the limits) sent at once, while a good photo is
  sent every 50 ms: their statuses, the good photo's worst wait, and the server's peak memory growth
  (``VmHWM`` after minus ``VmRSS`` before, from ``/proc``);
- ``stats_path=/dev/full`` (a statistics file that cannot be written): keep-alive requests all answered?

    python benchmarks/hostile_uploads.py --model models/model.onnx --photos ../shared/data/mushrooms-real
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from pathlib import Path

from _service import (  # benchmarks/_service.py
    Client,
    arguments,
    jpegs_512,
    multipart,
    report,
    service_process,
    timed_post,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.conftest
from tests.conftest import memory_mb, plain_png


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--large", type=int, default=3, help="large PNGs sent at once")
    args = parser.parse_args()
    good = jpegs_512(args.photos, 1)[0]
    figures: dict = {}
    with tempfile.TemporaryDirectory() as scratch, service_process(args.model, Path(scratch)) as (port, pid):
        figures["thin"] = {
            f"{w}x{h}": dict(zip(("status", "seconds"), timed_post(port, plain_png(w, h)), strict=True))
            for w, h in ((65535, 1), (1, 20_000))
        }
        large = plain_png(8000, 8000, rgba=True)
        resident_before, _ = memory_mb(pid)
        statuses: list[int] = []
        senders = [
            threading.Thread(target=lambda: statuses.append(timed_post(port, large)[0]))
            for _ in range(args.large)
        ]
        for sender in senders:
            sender.start()
        waits = []
        while any(sender.is_alive() for sender in senders):
            status, seconds = timed_post(port, good)
            waits.append(seconds)
            assert status == 200, status
            time.sleep(0.05)
        _, peak = memory_mb(pid)
        figures["large"] = {
            "count": args.large,
            "png_bytes": len(large),
            "statuses": statuses,
            "good_photos_sent_meanwhile": len(waits),
            "good_photo_worst_wait_s": max(waits),
            "peak_memory_growth_mb": peak - resident_before,
            "resident_after_mb": memory_mb(pid)[0] - resident_before,
        }
    with (
        tempfile.TemporaryDirectory() as scratch,
        service_process(args.model, Path(scratch), "stats_path=/dev/full") as (port, _),
    ):
        client = Client(port)
        body, content_type = multipart(good)
        answered = [client.post(body, content_type) for _ in range(100)]
        figures["unwritable_stats"] = {"requests": len(answered), "answered_200": answered.count(200)}
    report(figures, args.out)


if __name__ == "__main__":
    main()
