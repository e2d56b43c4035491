"""EXIF orientation, as phones store portrait photos, on every path a photo takes.

The photo is asymmetric (a red top-left quarter on grey), so each path is checked on where the corner
ends up, not by comparing two decoders with each other. Predict and the service run a small ONNX
"corner finder" whose classes are the four quarters: the answer says where the red corner was seen.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mushroom.core.images import decode_jpeg_strict, load_rgb, load_rgb_opencv
from mushroom.core.preprocessing import Preprocessing
from mushroom.data.dataset import ImageDataset
from mushroom.data.transforms import eval_transform
from tests.conftest import running_server
from tests.helpers import QUARTERS, corner_finder

WIDTH, HEIGHT = 60, 40  # upright: landscape, the red quarter top left
# What a camera stores so that a viewer applying orientation N shows the upright photo.
STORED_AS = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,  # counter-clockwise: the viewer turns it 90° clockwise back
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def oriented_jpeg(orientation: int) -> bytes:
    upright = np.full((HEIGHT, WIDTH, 3), 120, dtype=np.uint8)
    upright[: HEIGHT // 2, : WIDTH // 2] = (220, 30, 30)
    image = Image.fromarray(upright)
    if STORED_AS[orientation] is not None:
        image = image.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()


def red_quarter(rgb: np.ndarray) -> str:
    """Which quarter of an ``H x W x 3`` (or ``3 x H x W``) image is reddest."""
    if rgb.shape[0] == 3:
        rgb = np.moveaxis(rgb, 0, -1)
    redness = rgb[..., 0].astype(np.float64) - rgb[..., 1]
    h, w = redness.shape[0] // 2, redness.shape[1] // 2
    scores = [redness[:h, :w], redness[:h, w:], redness[h:, :w], redness[h:, w:]]
    return QUARTERS[int(np.argmax([s.mean() for s in scores]))]


@pytest.fixture(scope="module")
def oriented_photos(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    folder = tmp_path_factory.mktemp("oriented")
    paths = {}
    for orientation in STORED_AS:
        paths[orientation] = folder / f"orientation_{orientation}.jpg"
        paths[orientation].write_bytes(oriented_jpeg(orientation))
    return paths


def test_the_photos_are_stored_turned(oriented_photos: dict[int, Path]) -> None:
    """Without applying the tag, the red quarter is elsewhere for every orientation but 1 (and 5)."""
    stored = {o: red_quarter(np.asarray(Image.open(p).convert("RGB"))) for o, p in oriented_photos.items()}
    assert stored == {
        1: "top-left", 2: "top-right", 3: "bottom-right", 4: "bottom-left",
        5: "top-left", 6: "bottom-left", 7: "bottom-right", 8: "top-right",
    }  # fmt: skip
    assert Image.open(oriented_photos[6]).size == (HEIGHT, WIDTH)  # stored portrait


@pytest.mark.parametrize("orientation", list(STORED_AS))
def test_both_decoders_turn_the_photo_upright(orientation: int, oriented_photos: dict[int, Path]) -> None:
    path = oriented_photos[orientation]
    data = path.read_bytes()
    with Image.open(io.BytesIO(data)) as image:
        fast = decode_jpeg_strict(image, data)
    assert fast is not None
    for rgb in (load_rgb(path), fast, load_rgb_opencv(path)):
        assert rgb.shape == (HEIGHT, WIDTH, 3)
        assert red_quarter(rgb) == "top-left"


@pytest.mark.parametrize("decoder", ["pil", "opencv"])
def test_the_dataset_sees_the_photo_upright(decoder: str, oriented_photos: dict[int, Path]) -> None:
    pre = Preprocessing(image_size=32, crop_pct=1.0, mean=(0.5,) * 3, std=(0.5,) * 3)
    paths = list(oriented_photos.values())
    dataset = ImageDataset(paths, [0] * len(paths), eval_transform(pre), decoder=decoder)
    assert [red_quarter(dataset[i][0].numpy()) for i in range(len(paths))] == ["top-left"] * len(paths)


@pytest.fixture(scope="module")
def finder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return corner_finder(tmp_path_factory.mktemp("finder") / "corner_finder.onnx")


def test_predict_answers_on_the_upright_photo(
    finder: Path, oriented_photos: dict[int, Path], tmp_path: Path
) -> None:
    from tests.helpers import run_predict

    results = run_predict([f"model_path={finder}", f"inputs=[{oriented_photos[1].parent}]"], tmp_path)
    assert len(results) == len(STORED_AS)
    assert [r["prediction"] for r in results] == ["top-left"] * len(STORED_AS), json.dumps(results)


@pytest.mark.slow
def test_the_service_answers_on_the_upright_photo(
    finder: Path, oriented_photos: dict[int, Path], tmp_path: Path
) -> None:
    with running_server(finder, tmp_path) as url:
        for orientation, path in oriented_photos.items():
            files = {"file": (path.name, path.read_bytes(), "image/jpeg")}
            response = httpx.post(f"{url}/predict", files=files, timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["prediction"] == "top-left", orientation
