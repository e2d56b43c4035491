"""docs/how-to/extend.md works as written: each YAML block, put where its first line says (in a folder
added with hydra.searchpath, as for an installed package), composes and builds what the page promises."""

from __future__ import annotations

import re
from pathlib import Path
from unittest import mock

import pytest
import torch
from hydra.utils import instantiate

from tests.conftest import REPO, compose_config
from tests.helpers import make_distinct_folder

HOWTO = REPO / "docs" / "how-to" / "extend.md"


def howto_files() -> dict[str, str]:
    """``configs/<group>/<name>.yaml`` -> the YAML block of the how-to that starts with that path."""
    blocks = re.findall(r"```yaml\n(.*?)```", HOWTO.read_text(), flags=re.DOTALL)
    files = {}
    for block in blocks:
        where = next((line for line in block.splitlines()[:2] if line.startswith("# configs/")), None)
        assert where, f"each YAML block of the how-to says where it goes in its first lines:\n{block}"
        files[where.removeprefix("# ")] = block
    return files


@pytest.fixture
def my_configs(tmp_path: Path) -> str:
    """The how-to's files in a folder of one's own, as the override that adds it to the search path."""
    for relative, text in howto_files().items():
        path = tmp_path / "my_configs" / relative.removeprefix("configs/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return f"hydra.searchpath=[file://{tmp_path / 'my_configs'}]"


def test_the_howto_has_a_model_an_optimizer_and_a_dataset() -> None:
    assert sorted(howto_files()) == [
        "configs/data/my_mushrooms.yaml",
        "configs/model/efficientnet_b0.yaml",
        "configs/optimizer/radam.yaml",
    ]


@pytest.mark.usefixtures("hydra_init")
def test_a_timm_model_added_by_one_file(my_configs: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [my_configs, "model=efficientnet_b0", "model.pretrained=false"], tmp_path)
    model = instantiate(cfg.model, class_names=["Amanita", "Boletus"], _convert_="all")
    assert type(model.net).__name__ == "EfficientNet" and model.hparams["drop_path_rate"] == 0.1
    assert model.net(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
    assert model.hparams["optimizer"]["lr"] == 5e-4  # the recipe's lr, with the default AdamW
    assert model.hparams["label_smoothing"] == 0.1  # what the file leaves out keeps the schema's default


@pytest.mark.usefixtures("hydra_init")
def test_an_optimizer_added_by_one_file(my_configs: str, tmp_path: Path) -> None:
    cfg = compose_config("train", [my_configs, "model=cnn", "optimizer=radam", "scheduler=none"], tmp_path)
    model = instantiate(cfg.model, class_names=["Amanita", "Boletus"], _convert_="all")
    optimizer = model.build_optimizer()
    assert isinstance(optimizer, torch.optim.RAdam) and optimizer.defaults["decoupled_weight_decay"]
    # model=cnn comes after the optimizer in the defaults list: its lr and weight decay win.
    assert {group["lr"] for group in optimizer.param_groups} == {3e-3}


@pytest.mark.usefixtures("hydra_init")
def test_a_kaggle_dataset_added_by_one_file(my_configs: str, tmp_path: Path) -> None:
    photos = make_distinct_folder(tmp_path / "raw", {"Amanita": 6, "Boletus": 6})
    overrides = [my_configs, "data=my_mushrooms", f"data.root={photos}", f"paths.root_dir={tmp_path}"]
    cfg = compose_config("train", overrides, tmp_path)
    assert cfg.data.kaggle_handle == "someone/my-mushrooms/versions/1" and cfg.data.prepare.enabled
    with mock.patch("kagglehub.dataset_download", side_effect=AssertionError("photos are on disk")):
        datamodule = instantiate(cfg.data, _convert_="all")
        datamodule.prepare_data()
        datamodule.setup("fit")
    assert datamodule.class_names == ["Amanita", "Boletus"]
    assert datamodule.prepared().manifest_path.is_file()  # audited and split leak-free, as prepare does


def test_a_network_added_by_one_decorated_file_is_found_through_its_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The how-to's Python file, installed as a package with the entry point the how-to names: training
    finds the network by name, with its own preprocessing, without importing it by hand."""
    from mushroom.models import MushroomClassifier, create_network, network_preprocessing, registry

    blocks = re.findall(r"```python\n(.*?)```", HOWTO.read_text(), flags=re.DOTALL)
    (code,) = [block for block in blocks if block.startswith("# my_networks.py")]
    site = tmp_path / "site"
    (site / "my_networks-0.1.dist-info").mkdir(parents=True)
    (site / "my_networks.py").write_text(code)
    (site / "my_networks-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: my-networks\n")
    entry = re.search(r'\[project.entry-points."mushroom.networks"\]\n#\s+(\w+) = "(\w+)"', code)
    assert entry, "the how-to names its entry point"
    (site / "my_networks-0.1.dist-info" / "entry_points.txt").write_text(
        f"[mushroom.networks]\n{entry[1]} = {entry[2]}\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_plugins_loaded", False)

    assert network_preprocessing("tiny_mlp")["image_size"] == 64  # its own, not timm's or the default
    assert create_network("tiny_mlp", num_classes=3)(torch.zeros(2, 3, 64, 64)).shape == (2, 3)
    model = MushroomClassifier(name="tiny_mlp", class_names=["Amanita", "Boletus"], pretrained=False)
    assert type(model.net).__name__ == "TinyMLP" and model(torch.zeros(1, 3, 64, 64)).shape == (1, 2)
    assert "tiny_mlp" in registry.registered_names() and "small_cnn" in registry.registered_names()
