"""Developer and user tasks: ``invoke --list``."""

from __future__ import annotations

from invoke import Collection, Context, task


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


@task(
    default=True,
    help={"data": "data config: genus, safety, species215 or folder", "overrides": "Hydra overrides"},
)
def prepare(c: Context, data: str = "genus", overrides: str = "") -> None:
    """Download -> audit -> manifest -> resized cache: invoke data --data genus."""
    c.run(f"python -m mushroom.data.prepare data={data} {overrides}", pty=False)


@task(help={"data": "data config", "overrides": "Hydra overrides, e.g. data.root=DIR"})
def audit(c: Context, data: str = "genus", overrides: str = "") -> None:
    """Audit alone (bad files, duplicates): invoke data.audit --data folder --overrides data.root=DIR."""
    c.run(f"python -m mushroom.data.audit data={data} {overrides}", pty=False)


@task(help={"remote": "a DVC remote name (default: the configured default remote)"})
def push(c: Context, remote: str = "") -> None:
    """Record the current data/ in data.dvc and upload it to the DVC remote."""
    c.run("dvc commit --force data.dvc", pty=False)
    c.run(f"dvc push {'-r ' + remote if remote else ''}", pty=False)


@task(help={"remote": "a DVC remote name (default: the configured default remote)"})
def pull(c: Context, remote: str = "") -> None:
    """Fetch the data/ version recorded in data.dvc from the DVC remote."""
    c.run(f"dvc pull {'-r ' + remote if remote else ''}", pty=False)


namespace = Collection(install, train, evaluate, test, lint, format)
namespace.add_collection(Collection("data", prepare, audit, push, pull))
