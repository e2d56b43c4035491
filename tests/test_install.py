"""A non-editable install (as in a Docker image) finds its configs from any working directory."""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def venv_with_this_interpreters_packages(venv: Path) -> Path:
    """A new virtualenv that sees the packages of the interpreter running the tests, but not its mushroom.

    ``--system-site-packages`` would give the base interpreter's packages, which inside a virtualenv are
    not where the dependencies are. A ``.pth`` file lists this interpreter's site-packages instead; the
    ``.pth`` files found there (an editable mushroom) are not processed from such a path, so the wheel
    installed into the new virtualenv is the only ``mushroom`` it can import.
    """
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = [*site.getsitepackages(), site.getusersitepackages()]
    Path(purelib, "parent_packages.pth").write_text("\n".join(p for p in ours if Path(p).is_dir()) + "\n")
    return python


def test_wheel_install_composes_configs_outside_the_repo(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # no checkout on the path
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheel_dir)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    python = venv_with_this_interpreters_packages(tmp_path / "venv")
    wheel = next(wheel_dir.glob("mushroom-*.whl"))
    subprocess.run(
        [python, "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    where = subprocess.run(
        [python, "-c", "import mushroom, hydra; print(mushroom.__file__)"],
        cwd=tmp_path, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert where.returncode == 0, where.stderr
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr
    job = subprocess.run(
        [python, "-m", "mushroom.train", "experiment=real_photos_cpu", "data.root=/photos", "--cfg", "job"],
        cwd=tmp_path, capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert job.returncode == 0, job.stderr
    assert "tf_efficientnet_lite0.in1k" in job.stdout and "root: /photos" in job.stdout
