"""One photo at a time: the service's latency against bare ONNX Runtime on the same photo.

The bare figure is ``session.run`` on the already preprocessed image: the floor the service cannot beat.
The in-process pipeline adds decoding and preprocessing of the JPEG, so that the ratio to it is the cost
of HTTP alone. The service figure is what one client sees, one request after another on loopback:
HTTP, multipart, JPEG decoding, resizing, inference and the JSON answer. The bare figures are measured
before and after the service (the machine's speed drifts); the ratios use their means.

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
from _service import Client, arguments, jpegs_512, multipart, report, service  # benchmarks/_service.py
from PIL import Image

from mushroom.data.images import load_rgb
from mushroom.data.preprocessing import eval_preprocess
from mushroom.serving.model import OnnxClassifier


def median_ms(run: Callable[[], object], repeats: int, warmup: int = 10) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bare_onnxruntime_ms(model_path: Path, photo: bytes, repeats: int) -> tuple[float, float]:
    """``session.run`` alone, and the whole in-process path: JPEG bytes -> decode -> preprocess -> run."""
    model = OnnxClassifier(model_path)
    rgb = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"))
    batch = eval_preprocess(rgb, model.pre)[None]
    run_only = median_ms(lambda: model.predict_batch(batch), repeats)
    pipeline = median_ms(
        lambda: model.predict_rgb(load_rgb(io.BytesIO(photo), model.pre.resize_size)), repeats
    )
    return run_only, pipeline


def main() -> None:
    parser = arguments(__doc__)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    photo = jpegs_512(args.photos, 1)[0]
    before, pipeline_before = bare_onnxruntime_ms(args.model, photo, args.requests)
    body, content_type = multipart(photo)
    with tempfile.TemporaryDirectory() as scratch, service(args.model, Path(scratch)) as port:
        client = Client(port)

        def request() -> None:
            if client.post(body, content_type) != 200:
                raise RuntimeError("the service did not answer 200")

        served = median_ms(request, args.requests)
    after, pipeline_after = bare_onnxruntime_ms(args.model, photo, args.requests)
    bare, pipeline = (before + after) / 2, (pipeline_before + pipeline_after) / 2
    result = {
        "photo": {"bytes": len(photo), "size": list(Image.open(io.BytesIO(photo)).size)},
        "requests": args.requests,
        "bare_onnxruntime_p50_ms": {"before": before, "after": after, "mean": bare},
        "bare_decode_preprocess_run_p50_ms": {
            "before": pipeline_before,
            "after": pipeline_after,
            "mean": pipeline,
        },
        "service_p50_ms": served,
        "ratio_p50": served / bare,
        "ratio_p50_to_in_process_pipeline": served / pipeline,
    }
    report(result, args.out)


if __name__ == "__main__":
    main()
