"""Wall time of the two ways past one machine, measured on one host.

    python benchmarks/beyond_one_machine.py nodes --data ../shared/data/mushrooms-real
    python benchmarks/beyond_one_machine.py pruning --data ../shared/data/mushrooms-real

``nodes``: the same training run as 1 node x 1 process and as 2 nodes x 1 process (torchrun, static
rendezvous on localhost, gloo), one thread per process. On one 2-core host this measures what DDP's
communication and sharding cost and save, not the speed of a real network.
``pruning``: the same search (same sampler seed, every trial drawn at random, so both runs try the same
parameters) with the median pruner and without pruning.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMON = [
    "model=cnn",
    "trainer=cpu",
    "data=folder",
    "data.num_workers=0",
    "callbacks=[model_checkpoint]",
    "test=false",
]


def timed(commands: list[list[str]], env: dict[str, str]) -> float:
    """Seconds until every command (started together) has finished; raise if one fails."""
    start = time.perf_counter()
    running = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for c in commands
    ]
    for process in running:
        output = process.communicate()[0]
        if process.returncode:
            raise SystemExit(output[-3000:])
    return time.perf_counter() - start


def overrides(args: argparse.Namespace) -> list[str]:
    """The run both measurements make, on the data and sizes given."""
    return [
        *COMMON,
        f"data.root={args.data}",
        f"data.image_size={args.image_size}",
        f"trainer.max_epochs={args.epochs}",
        "trainer.enable_progress_bar=false",
    ]


def nodes(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    train = ["-m", "mushroom.train", *overrides(args)]
    one = timed([[sys.executable, *train, f"hydra.run.dir={work / 'one'}"]], env)
    torchrun = str(Path(sys.executable).parent / "torchrun")
    two = [
        [
            torchrun,
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={rank}",
            "--master-addr=127.0.0.1",
            "--master-port=29561",
            *train,
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=1",
            "trainer.num_nodes=2",
            f"hydra.run.dir={work / 'two'}",
        ]
        for rank in (0, 1)
    ]
    return {"one_node_s": round(one, 1), "two_nodes_s": round(timed(two, env), 1)}


def pruning(args: argparse.Namespace, env: dict[str, str], work: Path) -> dict:
    search = [
        "-m",
        "mushroom.search",
        *overrides(args),
        f"search.n_trials={args.trials}",
        f"search.sampler.n_startup_trials={args.trials}",
    ]
    results = {}
    for name, pruner in (
        ("pruned", []),
        (
            "unpruned",
            [
                "search.pruner._target_=optuna.pruners.NopPruner",
                "~search.pruner.n_startup_trials",
                "~search.pruner.n_warmup_steps",
            ],
        ),
    ):
        seconds = timed([[sys.executable, *search, *pruner, f"hydra.run.dir={work / name}"]], env)
        log = (work / name / "search.log").read_text()
        summary = next(line for line in log.splitlines() if "trials (" in line)
        results[name] = {"seconds": round(seconds, 1), "study": summary.split("] ", 1)[-1]}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("what", choices=["nodes", "pruning"])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--trials", type=int, default=10)
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as work:
        measure = nodes if args.what == "nodes" else pruning
        print(
            json.dumps({args.what: measure(args, env, Path(work)), "args": vars(args)}, default=str, indent=1)
        )


if __name__ == "__main__":
    main()
