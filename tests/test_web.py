"""The web page in a real headless Chromium against the running service: pick a photo, see the answer.

Needs Chromium: Debian's (``apt-get install chromium``; `.ci/run` installs it) or Playwright's own.
Uses a real mushroom photo from ``../shared`` when present, otherwise a generated one.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SHARED, make_image_folder, running_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian chromium is not installed (apt-get install chromium)"
    ),
]
# Without these, Chromium spends its start-up on Google services that a closed network refuses.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(exported_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # Answer every photo with a genus: the toy model has never seen a real photo.
    overrides = ("abstain_threshold=0.0", "open_set=false")
    with running_server(exported_model, tmp_path_factory.mktemp("web"), *overrides) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page() -> Iterator:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone screen
        yield page
        browser.close()


def real_or_generated_photo(tmp_path: Path) -> Path:
    shared = SHARED / "data" / "mushrooms-real" / "Amanita"
    if shared.is_dir():
        return sorted(shared.glob("*.jpg"))[0]
    folder = make_image_folder(tmp_path, classes=("Amanita",), per_class=1, size=(120, 100))
    return folder / "Amanita" / "amanita_000.jpg"


def shown_percent(probability: float, digits: int) -> str:
    """How the page writes a probability: rounded down, and "over 99%" near certainty."""
    top = 100 - 10**-digits
    if 100 * probability >= top:
        return f"over {top:.{digits}f}%"
    step = 10**digits
    return f"{math.floor(100 * probability * step + 1e-9) / step:.{digits}f}%"


def test_upload_a_photo_and_see_a_genus_and_the_warning(browser_page, server: str, tmp_path: Path) -> None:
    page = browser_page
    page.goto(server + "/")
    warning = page.locator("#warning")
    assert warning.is_visible() and "Never eat" in warning.inner_text()

    photo = real_or_generated_photo(tmp_path)
    page.set_input_files("#picker", str(photo))
    page.wait_for_selector("#result", state="visible", timeout=30_000)
    # The page shows what the service answers for this photo (small photos are sent as they are).
    direct = httpx.post(
        f"{server}/predict", files={"file": (photo.name, photo.read_bytes(), "image/jpeg")}, timeout=30
    ).json()
    assert page.inner_text("#genus") == direct["prediction"]
    assert page.inner_text("#confidence") == shown_percent(direct["confidence"], 0)
    rows = [row.inner_text().strip() for row in page.locator("#ranking .row").all()]
    assert rows == [f"{row['name']}: {shown_percent(row['probability'], 1)}" for row in direct["top_k"]]
    assert len(rows) == 3
    # The details list every one-value field of the answer, so a new field shows without page changes.
    # (text_content: the details are folded, so their text is not rendered until opened)
    shown = {
        cell.get_attribute("data-field"): cell.text_content() for cell in page.locator("#fields dd").all()
    }
    one_value = [
        key for key, value in direct.items() if key != "warning" and not isinstance(value, list | dict)
    ]
    assert sorted(shown) == sorted(one_value)
    assert shown["verdict"] == direct["verdict"] and float(shown["confidence"]) == pytest.approx(
        direct["confidence"], abs=1e-4
    )
    assert page.locator("#preview").is_visible()
    assert warning.is_visible()  # still on screen with the answer
    page.screenshot(path=str(tmp_path / "answer.png"), full_page=True)


def test_a_file_that_is_not_a_photo_shows_the_servers_reason(
    browser_page, server: str, tmp_path: Path
) -> None:
    page = browser_page
    page.goto(server + "/")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    page.set_input_files("#picker", str(notes))
    page.wait_for_selector("#error", state="visible", timeout=30_000)
    assert "text/plain, not as an image" in page.inner_text("#error")
    assert not page.locator("#result").is_visible() and page.locator("#warning").is_visible()


def test_the_page_runs_under_its_content_security_policy(browser_page, server: str, tmp_path: Path) -> None:
    """The page's own script and style are allowed by hash: nothing is refused, and the answer shows."""
    console: list[str] = []
    browser_page.on("console", lambda message: console.append(message.text))
    browser_page.goto(server + "/")
    browser_page.set_input_files("#picker", str(real_or_generated_photo(tmp_path)))
    browser_page.wait_for_selector("#result", state="visible", timeout=30_000)
    assert not [text for text in console if "Content Security Policy" in text or "Refused" in text]


def test_an_internal_error_shows_the_services_message(
    exported_model: Path, tmp_path: Path, browser_page
) -> None:
    """A 500 once came back as plain text, and the page said it could not reach the server."""
    fault = "import mushroom.serving.app as app\napp.answer = lambda *a, **k: 1 / 0\n"
    with running_server(exported_model, tmp_path, prelude=fault) as url:
        browser_page.goto(url + "/")
        browser_page.set_input_files("#picker", str(real_or_generated_photo(tmp_path)))
        browser_page.wait_for_selector("#error", state="visible", timeout=30_000)
        shown = browser_page.inner_text("#error")
    assert "The service failed to answer" in shown and "Could not reach" not in shown


def test_not_a_mushroom_is_shown_apart_from_not_sure(
    open_set_model: Path, open_set_run: tuple[Path, Path], browser_page, tmp_path: Path
) -> None:
    """A model trained with negatives: stripes are "Not a mushroom", with the reason and no genus ranking;
    a toy genus photo the model knows is shown with its genus."""
    from mushroom.core.onnx_model import OnnxClassifier
    from mushroom.predict import predict_files

    _, negatives = open_set_run
    thing = sorted((negatives / "not_mushroom").glob("*.jpg"))[0]
    genus = make_image_folder(tmp_path / "genus", classes=("Boletus",), per_class=6, size=(40, 40), seed=4)
    # The page shows what the service answers. The model is small and gets some toy photos wrong (how well
    # it learnt is measured in tests/test_open_set.py), so the page is shown one the same answer path calls
    # Boletus.
    photos = sorted((genus / "Boletus").glob("*.jpg"))
    answers = predict_files(OnnxClassifier(open_set_model), photos, 3, 0.0, 8, open_set=True)
    known = [path for path, answer in zip(photos, answers, strict=True) if answer["prediction"] == "Boletus"]
    assert known, answers
    page = browser_page
    with running_server(open_set_model, tmp_path, "abstain_threshold=0.0") as url:
        page.goto(url + "/")
        page.set_input_files("#picker", str(thing))
        page.wait_for_selector("#result[data-verdict='not_a_mushroom']", state="visible", timeout=30_000)
        assert page.inner_text("#genus") == "Not a mushroom"
        assert page.inner_text("#confidence") == ""
        shown = page.inner_text("#result")  # no known genus named, deadly or not, for a non-mushroom
        assert not [name for name in OnnxClassifier(open_set_model).info.class_names if name in shown], shown
        assert "non-mushroom" in page.inner_text("#note")
        assert not page.locator("#ranking").is_visible()
        assert page.locator("#warning").is_visible()

        page.set_input_files("#picker", str(known[0]))
        page.wait_for_selector("#result[data-verdict='genus']", state="visible", timeout=30_000)
        assert page.inner_text("#genus") == "Boletus"
        assert page.locator("#ranking").is_visible()


def crafted_answer(verdict: str, prediction: str, top: list[tuple[str, float]]) -> dict:
    """An answer as the service sends it, with an Amanita (deadly) among the top k."""
    return {
        "prediction": prediction,
        "verdict": verdict,
        "reason": None if verdict == "genus" else "The photo is unlike the genera this model knows.",
        "confidence": top[0][1],
        "not_sure": False,
        "abstain_threshold": 0.5,
        "known_score": 1.0,
        "open_set_threshold": 2.0,
        "top_k": [{"name": name, "probability": p} for name, p in top],
        "note": None,
        "dangerous": [
            {"name": "Amanita", "probability": top[0][1], "deadly": True, "poisonous": True, "note": ""}
        ],
        "warning": "Never eat a mushroom because of this answer.",
    }


@pytest.mark.parametrize(
    ("verdict", "prediction", "headline", "names_amanita", "danger"),
    [
        ("genus", "Amanita", "Amanita", True, "Possible deadly genus: Amanita."),
        ("not_a_mushroom", "not a mushroom", "Not a mushroom", False, "Never eat"),
        ("unknown_genus", "not a genus I know", "Not a genus I know", False, "Many genera this model does"),
    ],
)
def test_each_verdict_reads_right_and_no_answer_is_100_percent(
    browser_page, server: str, verdict: str, prediction: str, headline: str, names_amanita: bool, danger: str
) -> None:
    """A goldfish was "Not a mushroom" with "Possible deadly genus: Amanita" under it, and 99.5% read
    "Amanita 100%". The page renders answers crafted at those edges."""
    page = browser_page
    page.goto(server + "/")
    top = [("Amanita", 0.995), ("Boletus", 0.0046), ("Lactarius", 0.0004)]
    page.evaluate("answer => render(answer)", crafted_answer(verdict, prediction, top))
    assert page.inner_text("#genus") == headline
    visible = page.inner_text("#result")
    assert ("Amanita" in visible) is names_amanita, visible
    assert danger in page.inner_text("#dangerous")
    if verdict == "genus":
        assert page.inner_text("#confidence") == "over 99%"
        rows = [row.inner_text().strip() for row in page.locator("#ranking .row").all()]
        assert rows == ["Amanita: 99.5%", "Boletus: 0.4%", "Lactarius: 0.0%"]
        page.evaluate("answer => render(answer)", crafted_answer(verdict, prediction, [("Amanita", 0.99996)]))
        assert page.inner_text("#ranking .row") == "Amanita: over 99.9%"
    assert "100" not in visible
