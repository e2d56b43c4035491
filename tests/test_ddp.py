"""DDP through Lightning and Hydra: 2 CPU processes (gloo) train on disjoint data and save one checkpoint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mushroom.data.folder import scan_image_folder
from mushroom.data.splits import stratified_split
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
    n_train = len(stratified_split(scan_image_folder(data).labels, seed=42).train)
    # DistributedSampler pads an odd count by repeating one sample; otherwise the shards are disjoint.
    assert first | second == set(range(n_train))
    assert len(first & second) == n_train % 2
    checkpoints = sorted(p.name for p in run_dir.rglob("*.ckpt"))
    assert checkpoints == ["best.ckpt", "last.ckpt"]
    assert (run_dir / "test_metrics.json").is_file()
    # The relaunched rank wrote into the same run dir, not a new timestamped one.
    assert not (tmp_path / "logs").exists()
