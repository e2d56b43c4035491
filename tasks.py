"""Developer and user tasks: ``invoke --list``."""

from __future__ import annotations

from invoke import Context, task


@task
def install(c: Context) -> None:
    """Install runtime and development requirements and the package (editable)."""
    c.run("python -m pip install -r requirements.txt -r requirements_dev.txt -e .", pty=False)


@task(help={"experiment": "an experiment config, e.g. real_photos_cpu", "overrides": "Hydra overrides"})
def train(c: Context, experiment: str = "", overrides: str = "") -> None:
    """Train: invoke train --experiment real_photos_cpu --overrides "data.root=DIR trainer.max_epochs=5"."""
    exp = f"experiment={experiment}" if experiment else ""
    c.run(f"python -m mushroom.train {exp} {overrides}", pty=False)


@task(
    help={
        "ckpt": "checkpoint to evaluate",
        "data": "folder of <class>/<image>",
        "overrides": "more overrides",
    }
)
def evaluate(c: Context, ckpt: str, data: str, overrides: str = "") -> None:
    """Evaluate a checkpoint on every image of a folder."""
    c.run(
        f"python -m mushroom.evaluate ckpt_path={ckpt} data=folder data.root={data} {overrides}",
        pty=False,
    )


@task
def test(c: Context) -> None:
    """Run the test suite."""
    c.run("pytest", pty=False)


@task
def lint(c: Context) -> None:
    """ruff (lint + format check) and mypy."""
    c.run("ruff check .", pty=False)
    c.run("ruff format --check .", pty=False)
    c.run("mypy", pty=False)


@task
def format(c: Context) -> None:
    """Apply ruff's fixes and formatting."""
    c.run("ruff check --fix .", pty=False)
    c.run("ruff format .", pty=False)
