"""The service's bounds, in process: what an upload's header may say, the shared budgets, the stats file."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path

import pytest
from PIL import Image

from mushroom.core.preprocessing import Preprocessing
from mushroom.serving.budget import Budget
from mushroom.serving.recorder import StatsRecorder
from mushroom.serving.uploads import (
    MAX_HEAD_SEGMENTS,
    MAX_SCANS,
    UploadError,
    UploadLimits,
    jpeg_structure,
    open_upload,
)
from tests.conftest import plain_png

LIMITS = UploadLimits(max_bytes=10 * 2**20, max_pixels=64_000_000, max_aspect_ratio=10.0)


def jpeg(width: int, height: int, progressive: bool = False) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 60, 30)).save(buffer, format="JPEG", progressive=progressive)
    return buffer.getvalue()


def with_scans(data: bytes, extra: int) -> bytes:
    """A progressive JPEG with ``extra`` more scans: its last scan header and data, repeated (legal enough
    for a header check; what counts is that each one costs the decoder a pass)."""
    last = data.rindex(b"\xff\xda")
    return data[:last] + data[last:-2] * (extra + 1) + b"\xff\xd9"


@pytest.mark.parametrize(
    ("width", "height", "refused"), [(1000, 100, False), (1001, 100, True), (20, 201, True)]
)
def test_the_aspect_ratio_limit_is_exact(width: int, height: int, refused: bool) -> None:
    if refused:
        with pytest.raises(UploadError) as error:
            open_upload(plain_png(width, height), LIMITS, 256)
        assert error.value.status_code == 422 and error.value.reason == "too_thin"
    else:
        assert open_upload(plain_png(width, height), LIMITS, 256).size == (width, height)


def test_too_many_pixels_says_how_many() -> None:
    with pytest.raises(UploadError) as error:
        open_upload(plain_png(9000, 8000), LIMITS, 256)
    assert error.value.status_code == 413
    assert "9000 x 8000 = 72.0 MP" in error.value.message and "64 megapixels" in error.value.message


def test_decoding_cost_counts_the_pixels_the_decoder_will_hold() -> None:
    """A JPEG decodes reduced by up to 8 when the model needs fewer pixels; a PNG decodes whole."""
    assert open_upload(plain_png(2048, 1536), LIMITS, 256).decode_pixels == 2048 * 1536
    assert open_upload(jpeg(2048, 1536), LIMITS, 256).decode_pixels == 512 * 384  # reduced by 4
    assert open_upload(jpeg(4096, 2048), LIMITS, 256).decode_pixels == 512 * 256  # by 8, at most
    assert open_upload(jpeg(2048, 1536), LIMITS, 700).decode_pixels == 1024 * 768  # by 2 only
    assert open_upload(jpeg(300, 200), LIMITS, 256).decode_pixels == 300 * 200
    # Progressive: the decoder holds every coefficient at full size whatever the scale it decodes at.
    assert open_upload(jpeg(2048, 1536, progressive=True), LIMITS, 256).decode_pixels == 2048 * 1536


def test_a_marker_flood_is_refused_in_bounded_time() -> None:
    """Two million empty APPn segments before the image took seconds to parse, on the event loop."""
    import time

    photo = jpeg(640, 480)
    flood = photo[:2] + b"\xff\xe1\x00\x02" * 2_000_000 + photo[2:]
    start = time.perf_counter()
    with pytest.raises(UploadError) as error:
        open_upload(flood, LIMITS, 256)
    assert (error.value.status_code, error.value.reason) == (422, "too_many_segments")
    assert time.perf_counter() - start < 0.5
    few = photo[:2] + b"\xff\xe1\x00\x02" * (MAX_HEAD_SEGMENTS - 10) + photo[2:]  # EXIF-heavy but a photo
    assert open_upload(few, LIMITS, 256).size == (640, 480)


def test_a_jpeg_with_hundreds_of_scans_is_refused() -> None:
    photo = jpeg(640, 480, progressive=True)
    assert jpeg_structure(photo) and not jpeg_structure(jpeg(640, 480))
    scans = photo.count(b"\xff\xda")
    assert open_upload(with_scans(photo, MAX_SCANS - scans), LIMITS, 256).size == (640, 480)
    with pytest.raises(UploadError) as error:
        open_upload(with_scans(photo, MAX_SCANS - scans + 1), LIMITS, 256)
    assert (error.value.status_code, error.value.reason) == (422, "too_many_scans")
    assert f"{MAX_SCANS + 1} scans" in error.value.message


def test_a_small_request_passes_large_ones_waiting_for_room() -> None:
    async def scenario() -> list[str]:
        budget = Budget(100, wait_s=5, what="test")
        order: list[str] = []

        async def hold(name: str, amount: float, seconds: float) -> None:
            async with budget.hold(amount):
                order.append(name)
                await asyncio.sleep(seconds)

        first = asyncio.create_task(hold("large 1", 80, 0.2))
        await asyncio.sleep(0.01)
        second = asyncio.create_task(hold("large 2", 80, 0.0))  # waits: 80 + 80 > 100
        await asyncio.sleep(0.01)
        small = asyncio.create_task(hold("small", 10, 0.0))  # fits beside the first
        await asyncio.gather(first, second, small)
        assert budget.free == 100
        return order

    assert asyncio.run(scenario()) == ["large 1", "small", "large 2"]


def test_waiting_too_long_for_room_is_a_503_and_gives_nothing_away() -> None:
    async def scenario() -> UploadError:
        budget = Budget(100, wait_s=0.05, what="decoding other photos")
        async with budget.hold(100):
            with pytest.raises(UploadError) as error:
                async with budget.hold(1):
                    pass
        assert budget.free == 100
        return error.value

    error = asyncio.run(scenario())
    assert error.status_code == 503 and error.reason == "busy" and "decoding other photos" in error.message


def test_more_than_the_whole_budget_waits_for_all_of_it() -> None:
    async def scenario() -> float:
        budget = Budget(100, wait_s=1, what="test")
        async with budget.hold(500):
            return budget.free

    assert asyncio.run(scenario()) == 0


def test_taking_bytes_without_waiting() -> None:
    budget = Budget(10, wait_s=0, what="receiving other uploads")
    budget.take_now(6)
    with pytest.raises(UploadError):
        budget.take_now(5)
    budget.give_back(6)
    budget.take_now(10)


def test_the_stats_file_rotates_at_its_size(tmp_path: Path) -> None:
    path = tmp_path / "stats.jsonl"
    recorder = StatsRecorder(str(path), max_mb=1000 / 2**20)  # 1000 bytes
    for i in range(40):
        assert recorder.record({"i": i, "padding": "x" * 40})
    recorder.close()
    current = [json.loads(line)["i"] for line in path.read_text().splitlines()]
    previous = [json.loads(line)["i"] for line in (tmp_path / "stats.jsonl.1").read_text().splitlines()]
    assert path.stat().st_size <= 1000 and current[-1] == 39
    assert previous[-1] + 1 == current[0]  # nothing lost at the rotation in between


def test_recording_fails_quietly_and_resumes_when_writing_works_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "stats"
    blocker.write_text("a file where the folder should be")
    path = blocker / "stats.jsonl"
    with caplog.at_level(logging.WARNING):
        recorder = StatsRecorder(str(path))
        assert [recorder.record({"i": i}) for i in range(3)] == [False] * 3
    assert caplog.text.count("Cannot record input statistics") == 1
    blocker.unlink()  # the problem is fixed while serving
    assert recorder.record({"i": 3})
    recorder.close()
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == [3]


def test_recording_nothing_is_not_a_failure() -> None:
    assert StatsRecorder(None).record({"i": 0}) is True


@pytest.mark.parametrize(
    "values",
    [{"image_size": "big"}, {"crop_pct": 0}, {"mean": [0.5, 0.5]}, {"image_size": -3}, {"std": "abc"}],
)
def test_preprocessing_from_metadata_refuses_wrong_values(values: dict) -> None:
    with pytest.raises(ValueError):
        Preprocessing.from_dict(values)


def test_preprocessing_from_metadata_reads_numbers_as_numbers() -> None:
    pre = Preprocessing.from_dict({"image_size": "64", "crop_pct": "1", "mean": [0, 0, 0], "std": [1, 1, 1]})
    assert (pre.image_size, pre.crop_pct, pre.mean, pre.std) == (64, 1.0, (0.0,) * 3, (1.0,) * 3)
