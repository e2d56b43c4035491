"""The README and the docs are true to the code: the quickstart runs as written, every command and key they
show exists, and no link between them is dead."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ENTRY_POINTS, free_port, make_image_folder
from tests.replicas import (
    CALTECH,
    SPECIES,
    build_caltech256,
    build_species215,
    fill_cache,
    in_kagglehub_cache,
)

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARKDOWN = [README, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shell_commands(text: str) -> list[str]:
    """Each command of the ```bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                commands.append(line)
    return commands


def mushroom_arguments(command: str) -> tuple[str, list[str]] | None:
    """``(module, arguments)`` of a command running ``python -m mushroom.<module>`` (also under torchrun)."""
    words = shlex.split(command)
    for i, word in enumerate(words[:-1]):
        if word == "-m" and words[i + 1].startswith("mushroom."):
            return words[i + 1].removeprefix("mushroom."), words[i + 2 :]
    return None


def invoke_tasks() -> set[str]:
    listed = subprocess.run(
        [sys.executable, "-m", "invoke", "--list"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    names = set()
    for line in listed.splitlines():
        match = re.match(r"\s+([\w.-]+)(?: \(([\w.-]+)\))?", line)
        if match:
            names |= {name for name in match.groups() if name}
    return names


def test_every_command_the_docs_show_exists() -> None:
    """Each `python -m mushroom...` line composes (keys, options and values as the schemas take them), each
    `python benchmarks/...` script and each `invoke` task exists."""
    from mushroom.config_checks import command_line_error

    tasks = invoke_tasks()
    checked, wrong = 0, []
    for path in MARKDOWN:
        if path.name == "extend.md":
            continue  # its commands use the options it adds; tests/test_extend.py runs them
        for command in shell_commands(path.read_text()):
            where = f"{path.relative_to(ROOT)}: {command}"
            found = mushroom_arguments(command)
            if found:
                module, arguments = found
                if module == "cv":
                    assert (ROOT / "src" / "mushroom" / "cv.py").is_file(), where
                    continue
                assert module in ENTRY_POINTS, where
                if "..." in command or "<" in command or "--config-dir" in arguments:
                    continue  # an elided or templated line: its module is checked, its keys cannot be
                overrides = [word for word in arguments if word not in ("-m", "--multirun")]
                error = command_line_error(ENTRY_POINTS[module], overrides)
                wrong += [f"{where}\n  {error}"] if error else []
                checked += 1
            elif command.startswith("python benchmarks/"):
                wrong += [] if (ROOT / command.split()[1]).is_file() else [where]
            elif command.startswith("invoke "):
                wrong += [] if command.split()[1] in tasks else [where]
    assert wrong == []
    assert checked >= 20


def test_every_key_the_readme_names_exists() -> None:
    """Keys written inline (`model.danger_weight`, `data.batch_size=-3`) are keys of the train config."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("mushroom.configs", version_base="1.3"):
        cfg = compose("train")
        sgd = compose("train", overrides=["optimizer=sgd", "scheduler=onecycle"])
    top = set(cfg.keys()) - {"safety"}
    spans = re.findall(r"`([a-z_]+(?:\.[a-z_0-9]+)+)(?:=[^`]*)?`", README.read_text())
    tasks = invoke_tasks()  # `data.audit`, `docs.serve` are task names, not keys
    named = [span for span in spans if span.split(".")[0] in top and span not in tasks]
    assert len(named) >= 8
    for key in named:
        assert _has(cfg, key) or _has(sgd, key), key


def _has(cfg: object, key: str) -> bool:
    from omegaconf import DictConfig

    node = cfg
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node.keys():  # noqa: SIM118 (??? values count)
            return False
        node = node._get_node(part)
    return True


def test_no_link_is_dead() -> None:
    """Relative links and images in the README, CONTRIBUTING, CHANGELOG and docs point at files that exist,
    and a link to a heading of the same page names one it has. (Web links are not fetched: no network.)"""
    for path in MARKDOWN:
        text = path.read_text()
        targets = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
        headings = {_slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
        for target in targets:
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            file_part, _, anchor = target.partition("#")
            if not file_part:
                assert anchor in headings, f"{path.relative_to(ROOT)}: #{anchor}"
                continue
            assert (path.parent / file_part).exists(), f"{path.relative_to(ROOT)}: {target}"


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def quickstart() -> list[str]:
    text = README.read_text()
    block = text.split("<!-- quickstart")[1].split("<!-- /quickstart -->")[0]
    return shell_commands(block)


#: Added to the quickstart's training command so that it runs in seconds on the replica's tiny photos:
#: no ImageNet weights to download, 32 px, one epoch.
QUICK = ["model.pretrained=false", "data.image_size=32", "trainer.max_epochs=1", "model.head_only_epochs=0"]


@pytest.mark.slow
def test_the_quickstart_runs_as_written(tmp_path: Path) -> None:
    """In an empty directory, with a replica of the Kaggle genus archive in kagglehub's cache (as a first
    download leaves it, with the negatives' archives) and no network: train, predict on a photo, export,
    serve the page."""
    import httpx

    commands = quickstart()
    assert [command.split()[:3] for command in commands] == [
        ["python", "-m", f"mushroom.{name}"] for name in ("train", "predict", "export", "serve")
    ]
    cache = tmp_path / "kagglehub"
    fill_cache(cache, version=1, per_class=6)
    # The negatives experiment=genus_cpu downloads with the photos: other genera, and non-mushrooms.
    in_kagglehub_cache(cache, SPECIES, 2, lambda root: build_species215(root, copy_outside=False))
    in_kagglehub_cache(cache, CALTECH, 1, build_caltech256)
    photo = make_image_folder(tmp_path / "mine", classes=("Boletus",), per_class=1, size=(96, 72))
    work = tmp_path / "fresh"
    work.mkdir()
    (photo / "Boletus" / "boletus_000.jpg").rename(work / "my_photo.jpg")
    env = {
        **os.environ,
        "KAGGLEHUB_CACHE": str(tmp_path / "kagglehub"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "empty-hf-cache"),
    }
    for command in commands[:3]:
        words = [sys.executable, *shlex.split(command)[1:]]
        if "mushroom.train" in command:
            words += QUICK
        done = subprocess.run(words, cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{command}\n{done.stderr[-3000:]}"
        if "mushroom.predict" in command:
            assert "my_photo.jpg" in done.stdout
        if "mushroom.train" in command:  # with the negatives that come with the data, as the README says
            assert "Open-set negatives from kaggle:" in done.stderr + done.stdout, done.stderr[-3000:]
    assert (work / "logs" / "quickstart" / "checkpoints" / "best.ckpt").is_file()
    assert (work / "models" / "quickstart.onnx").is_file()

    port = free_port()
    serve = [sys.executable, *shlex.split(commands[3])[1:], f"port={port}"]
    server = subprocess.Popen(serve, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-3000:] if server.stderr else ""
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not answer within 60 s"
                time.sleep(0.3)
        assert page.status_code == 200 and "Which mushroom genus" in page.text
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_the_python_example_runs(
    trained_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The README's Python example, with its checkpoint and photo paths pointed at real ones."""
    block = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert len(block) == 1
    photo = make_image_folder(tmp_path / "p", classes=("Boletus",), per_class=1, size=(64, 48))
    code = block[0].replace("logs/mine/checkpoints/best.ckpt", str(trained_checkpoint))
    code = code.replace('"photo.jpg"', repr(str(photo / "Boletus" / "boletus_000.jpg")))
    assert code != block[0]
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    # a genus of the toy model, or "not sure" / "not a ..."; then its confidence, and the warning
    assert printed.split()[0] in {"Amanita", "Boletus", "Lactarius", "not"}, printed
    assert "Never eat" in printed
