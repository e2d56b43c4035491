"""DDP through Lightning and Hydra: 2 CPU processes (gloo) train on disjoint data and save one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mushroom.data import MushroomDataModule
from tests.conftest import REPO, make_image_folder

pytestmark = pytest.mark.slow  # end to end: subprocesses of the package's own commands


def test_two_process_ddp_on_cpu_sees_disjoint_data_and_writes_one_checkpoint(tmp_path: Path) -> None:
    data = make_image_folder(tmp_path / "photos", per_class=16, size=(32, 32))
    run_dir = tmp_path / "run"
    # PYTHONPATH (src, then the repository for tests.helpers) comes from tests/conftest.py.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mushroom.train",
            "experiment=smoke",
            f"data.root={data}",
            "data.image_size=32",
            "data.num_workers=0",
            "data.batch_size=8",
            "trainer=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "trainer.max_epochs=1",
            "callbacks=[model_checkpoint]",
            "+callbacks.record._target_=tests.helpers.RecordTrainIndices",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((run_dir / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # Both ranks ran this checkout's package, not whatever mushroom is installed.
    assert {r["package"] for r in ranks} == {str(REPO / "src" / "mushroom" / "__init__.py")}
    first, second = (set(r["indices"]) for r in ranks)
    split = MushroomDataModule(data).index_and_split()[
        1
    ]  # the split training made: its defaults, as the run's
    n_train = len(split.train)
    # DistributedSampler pads an odd count by repeating one sample; otherwise the shards are disjoint.
    assert first | second == set(range(n_train))
    assert len(first & second) == n_train % 2
    checkpoints = sorted(p.name for p in run_dir.rglob("*.ckpt"))
    assert checkpoints == ["best.ckpt", "last.ckpt"]
    # The same report as one process writes: calibrated on rank 0 while rank 1 waited, then tested.
    report = json.loads((run_dir / "test_metrics.json").read_text())
    assert {"calibration", "open_set", "reliability_bins", "ece"} <= set(report)
    assert report["calibration"]["temperature"] > 0 and report["n_images"] == len(split.test)
    # The relaunched rank wrote into the same run dir, not a new timestamped one.
    assert not (tmp_path / "logs").exists()


def free_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_nodes_with_torchrun_share_one_run_and_end_with_the_same_weights(tmp_path: Path) -> None:
    """2 nodes x 1 process on this host (static rendezvous, gloo): what `srun` or two machines run."""
    import shutil
    import time

    from tests.helpers import make_distinct_folder  # photos that the audit does not group as duplicates

    data = make_distinct_folder(tmp_path / "photos", {"Amanita": 16, "Boletus": 16, "Lactarius": 16})
    run_dir, processed = tmp_path / "run", tmp_path / "shared" / "processed"
    port = free_tcp_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("COVERAGE_PROCESS_START", None)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    nodes = [
        subprocess.Popen(
            [
                torchrun,
                "--nnodes=2",
                "--nproc-per-node=1",
                f"--node-rank={node}",
                "--master-addr=127.0.0.1",
                f"--master-port={port}",
                "-m",
                "mushroom.train",
                "experiment=smoke",
                f"data.root={data}",
                "data.image_size=32",
                "data.num_workers=0",
                "data.prepare.enabled=true",  # rank 0 of node 0 builds the manifest and cache; node 1 waits
                f"data.prepare.dir={processed}",
                "trainer=ddp",
                "trainer.accelerator=cpu",
                "trainer.devices=1",
                "trainer.num_nodes=2",
                "trainer.max_epochs=2",
                "callbacks=[model_checkpoint]",
                "+callbacks.weights._target_=tests.helpers.RecordFinalWeights",
                f"hydra.run.dir={run_dir}",
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for node in (0, 1)
    ]
    started = time.monotonic()
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    records = [json.loads((run_dir / f"weights{rank}.json").read_text()) for rank in (0, 1)]
    assert [(r["node"], r["rank"], r["world_size"]) for r in records] == [(0, 0, 2), (1, 1, 2)]
    assert records[0]["checksum"] == records[1]["checksum"]  # DDP kept the replicas identical
    assert sorted(p.name for p in run_dir.rglob("*.ckpt")) == ["best.ckpt", "last.ckpt"]
    assert not (tmp_path / "logs").exists()  # both nodes wrote into the one run directory
    log = (run_dir / "train.log").read_text()
    assert log.count("test_metrics.json") == 1  # the report is written once, by global rank 0
    assert log.count("Manifest written") == 1  # the data was prepared once
    assert time.monotonic() - started < 300
