"""invoke tasks: run with the interpreter that runs invoke (an unactivated virtualenv works), developer
tasks in the repository wherever they are called from, the user's tasks where the user is."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def dry_run(task: list[str], cwd: Path) -> list[str]:
    """The commands ``invoke --dry`` would run, as plain text (its colour codes stripped)."""
    shown = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO), "--dry", *task],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in shown.splitlines() if line.strip()]


@pytest.mark.parametrize("task", [["test"], ["lint"], ["coverage"], ["format"], ["install"]])
def test_developer_tasks_run_in_the_repository_with_this_interpreter(task: list[str], tmp_path: Path) -> None:
    commands = dry_run(task, cwd=tmp_path)
    assert commands
    for command in commands:
        assert command.startswith(f"cd {REPO} && ")
        program = command.removeprefix(f"cd {REPO} && ").split()[0]
        assert program in (sys.executable, str(Path(sys.executable).parent / "hadolint")), command


@pytest.mark.parametrize(
    "task",
    [
        ["train", "--overrides", "data.root=photos"],
        ["evaluate", "--ckpt", "best.ckpt", "--data", "photos"],
        ["export", "--ckpt", "best.ckpt"],
        ["serve"],
    ],
)
def test_user_tasks_run_where_the_user_is_with_this_interpreter(task: list[str], tmp_path: Path) -> None:
    (command,) = dry_run(task, cwd=tmp_path)
    assert not command.startswith("cd ")
    assert command.split()[:3] == [sys.executable, "-m", f"mushroom.{task[0]}"]


def test_cv_trains_the_folds_then_pools_and_compares_them(tmp_path: Path) -> None:
    import shlex

    train, pool, compare = dry_run(
        ["cv", "--folds", "3", "--out", "cv/new", "--by-source", "--compare", "cv/base"], cwd=tmp_path
    )
    # The words as bash reads them (invoke runs the line in a shell): ${data.fold} must reach Hydra.
    words = subprocess.run(
        ["bash", "-c", f'set -- {train}; printf "%s\\n" "$@"'], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert words[:4] == [sys.executable, "-m", "mushroom.train", "-m"]
    assert {"data.num_folds=3", "data.fold=0,1,2", "hydra.sweep.subdir=fold_${data.fold}"} <= set(words)
    assert "data.prepare.split_by_source=true" in words
    assert shlex.split(pool) == [sys.executable, "-m", "mushroom.cv", "cv/new"]
    assert shlex.split(compare) == [sys.executable, "-m", "mushroom.cv", "cv/base", "--compare", "cv/new"]


def test_cv_with_a_slice_also_judges_and_compares_the_slice_alone(tmp_path: Path) -> None:
    import shlex

    commands = dry_run(
        ["cv", "--out", "cv/new", "--compare", "cv/base", "--slice-file", "wild.txt"], cwd=tmp_path
    )
    assert [shlex.split(command) for command in commands[-2:]] == [
        [sys.executable, "-m", "mushroom.cv", "cv/new", "--slice", "wild.txt"],
        [sys.executable, "-m", "mushroom.cv", "cv/base", "--compare", "cv/new", "--slice", "wild.txt"],
    ]
    assert len(commands) == 5  # train, pool, compare, then the slice's two
