"""A non-editable install (as in a Docker image) finds its configs from any working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_wheel_install_composes_configs_outside_the_repo(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(REPO),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
        ],
        check=True,
        capture_output=True,
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = venv / "bin" / "python"
    wheel = next(wheel_dir.glob("mushroom-*.whl"))
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    where = subprocess.run(
        [python, "-c", "import mushroom; print(mushroom.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr
    job = subprocess.run(
        [python, "-m", "mushroom.train", "experiment=real_photos_cpu", "data.root=/photos", "--cfg", "job"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert job.returncode == 0, job.stderr
    assert "tf_efficientnet_lite0.in1k" in job.stdout and "root: /photos" in job.stdout
