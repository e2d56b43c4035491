"""One photo at a time: the service's latency against bare ONNX Runtime on the same photo.

The bare figure is ``session.run`` of a plain ONNX Runtime session (default options, as anyone would
first try it) on the already preprocessed image: the floor the service is measured against.
The in-process pipeline adds decoding and preprocessing of the JPEG (as the service does them), so that
the ratio to it is the cost of HTTP alone. The service figure is what one client sees, one request after
another on loopback: HTTP, multipart, JPEG decoding, resizing, inference and the JSON answer.

This machine's speed drifts by several per cent over a minute, so the three are measured in turns
(``--rounds`` rounds of ``--requests`` each) and every figure is the median over all its rounds.

    python benchmarks/serve_latency.py --model models/model.onnx --photos ../shared/data/mushrooms-real
"""

from __future__ import annotations

import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime
from _service import Client, arguments, jpegs_512, multipart, report, service  # benchmarks/_service.py
from PIL import Image

from mushroom.core.onnx_model import INPUT_NAME, OUTPUT_NAME, OnnxClassifier
from mushroom.core.preprocessing import eval_preprocess
from mushroom.serving.uploads import UploadLimits, decode_checked, open_upload


def timed_ms(run: Callable[[], object], repeats: int, warmup: int = 5) -> list[float]:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(1000 * (time.perf_counter() - start))
    return times


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--requests", type=int, default=60, help="per kind and round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    photo = jpegs_512(args.photos, 1)[0]
    model = OnnxClassifier(args.model)  # as the service runs it
    batch = eval_preprocess(np.asarray(Image.open(io.BytesIO(photo)).convert("RGB")), model.pre)[None]
    plain = onnxruntime.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    limits = UploadLimits(max_bytes=2**30, max_pixels=2**30, max_aspect_ratio=1e9)

    def bare() -> None:
        plain.run([OUTPUT_NAME], {INPUT_NAME: batch})

    def in_process() -> None:
        side = model.pre.resize_size
        model.predict_rgb(decode_checked(open_upload(photo, limits, side), side))

    body, content_type = multipart(photo)
    times: dict[str, list[float]] = {"bare": [], "in_process": [], "service": []}
    round_ratios = []
    with tempfile.TemporaryDirectory() as scratch, service(args.model, Path(scratch)) as port:
        client = Client(port)

        def request() -> None:
            if client.post(body, content_type) != 200:
                raise RuntimeError("the service did not answer 200")

        for _ in range(args.rounds):
            this_round = {
                "bare": timed_ms(bare, args.requests),
                "in_process": timed_ms(in_process, args.requests),
                "service": timed_ms(request, args.requests),
            }
            for kind, values in this_round.items():
                times[kind] += values
            round_ratios.append(
                statistics.median(this_round["service"]) / statistics.median(this_round["bare"])
            )

    p50 = {kind: statistics.median(values) for kind, values in times.items()}
    result = {
        "photo": {"bytes": len(photo), "size": list(Image.open(io.BytesIO(photo)).size)},
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "bare_onnxruntime_p50_ms": p50["bare"],
        "in_process_decode_preprocess_run_p50_ms": p50["in_process"],
        "service_p50_ms": p50["service"],
        "ratio_p50": p50["service"] / p50["bare"],
        "ratio_p50_to_in_process": p50["service"] / p50["in_process"],
        "ratio_p50_per_round": {"min": min(round_ratios), "max": max(round_ratios)},
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
