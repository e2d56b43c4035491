"""The typed schema of each config group we own: every default lives here, and only here.

Each dataclass is registered in Hydra's ConfigStore (``data_schema``, ...); the option files start from it
(``defaults: [/data_schema@_here_, _self_]``) and name only what they change. So a default is written
once, a value of the wrong type (``data.batch_size=abc``) is refused while the config is composed, with
the key's name, and the objects (``MushroomDataModule``, ``MushroomClassifier``, the service) take the
same dataclasses. Torch-free on purpose: composing a config (``--help``, a typo) stays quick.

Names: a ``*Config`` is the schema of a whole config group or entry point (what :data:`SCHEMAS` registers:
``DataConfig``, ``ModelConfig``, ``ServeConfig``, ``RayClusterConfig``); a ``*Settings`` (or ``ServerLimits``,
``Augmentation``) is a node inside one, which the code that uses it takes on its own (``PrepareSettings``
for the audit, ``ServeSettings`` for the service without the entry point's ``paths``).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from mushroom.core.safety import check_safety_policy
from mushroom.errors import MushroomError

T = TypeVar("T")


@dataclass(frozen=True)
class Range:
    """The numbers a setting may take: from ``low`` to ``high`` (``None``: unbounded), each end included
    unless ``low_open``/``high_open``. ``None`` values (a setting left to its default rule) always fit."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: object) -> bool:
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return True  # not a number: the type check, not the range, judges it
        if math.isnan(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        if self.low is not None and self.high is not None:
            left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
            return f"in {left}{self.low:g}, {self.high:g}{right}"
        if self.low is not None:
            return f"above {self.low:g}" if self.low_open else f"at least {self.low:g}"
        assert self.high is not None, "a range bounds at least one end"
        return f"below {self.high:g}" if self.high_open else f"at most {self.high:g}"


#: The usual ranges, named by what the setting holds.
COUNT = Range(1)
NON_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
PROBABILITY = Range(0, 1)
SHARE_BELOW_ONE = Range(0, 1, high_open=True)


def ranged(default: Any, allowed: Range) -> Any:
    """A schema field with its default and the range its values must lie in (checked at composition)."""
    return field(default=default, metadata={"range": allowed})


#: Ranges of settings that other libraries' classes take (the optimizer, schedule and Trainer groups, the
#: decision targets of train.yaml): dotted key -> range; keys a config lacks are not checked.
OTHER_RANGES: dict[str, Range] = {
    "model.optimizer.lr": POSITIVE,
    "model.optimizer.weight_decay": NON_NEGATIVE,
    "model.optimizer.momentum": SHARE_BELOW_ONE,
    "model.scheduler.warmup_epochs": NON_NEGATIVE,
    "model.scheduler.min_lr_ratio": PROBABILITY,
    "model.scheduler.pct_start": Range(0, 1, low_open=True, high_open=True),
    "model.scheduler.div_factor": POSITIVE,
    "model.scheduler.final_div_factor": POSITIVE,
    "trainer.max_epochs": Range(-1),
    "trainer.min_epochs": NON_NEGATIVE,
    "trainer.accumulate_grad_batches": COUNT,
    "trainer.log_every_n_steps": COUNT,
    "trainer.check_val_every_n_epoch": COUNT,
    "trainer.num_nodes": COUNT,
    "calibration.dangerous_target": PROBABILITY,
    "calibration.open_set_tpr": Range(0, 1, low_open=True),
    "calibration.deadly_risk": Range(0, 1, low_open=True),
    "eval.dangerous_target": PROBABILITY,  # the old names, until they go (config_checks.RENAMED_KEYS)
    "eval.open_set_tpr": Range(0, 1, low_open=True),
}


def out_of_range(settings: Any, where: str) -> str | None:
    """The first setting of a schema instance (nested ones too) outside its range, as one line naming
    the key and the range; ``None`` when all fit."""
    for spec in dataclasses.fields(settings):
        value = getattr(settings, spec.name)
        allowed = spec.metadata.get("range")
        if allowed is not None and value not in allowed:
            return range_message(f"{where}.{spec.name}", value, allowed)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            found = out_of_range(value, f"{where}.{spec.name}")
            if found:
                return found
    return None


def range_message(key: str, value: Any, allowed: Range) -> str:
    """``data.batch_size=-3: must be at least 1.``"""
    return f"{key}={value}: must be {allowed}."


def from_mapping(
    cls: type[T], values: Mapping[str, Any] | T | None, where: str, legacy: tuple[str, ...] = ()
) -> T:
    """``cls`` from a config node (or ``cls`` itself); an unknown key is an error that names ``where``.

    ``legacy``: keys older checkpoints carry that are no longer settings; they are left out.
    """
    if isinstance(values, cls):
        return values
    given: dict[str, Any] = {
        key: value
        for key, value in dict(values or {}).items()  # type: ignore[arg-type]
        if not (key.startswith("_") and key.endswith("_"))  # Hydra's _target_, _recursive_, ...
    }
    names = {f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")}  # type: ignore[arg-type]
    unknown = sorted(set(given) - names - set(legacy))
    if unknown:
        raise MushroomError(
            f"{where} has no setting {', '.join(unknown)}. Its settings: {', '.join(sorted(names))}."
        )
    hints = typing.get_type_hints(cls)
    nested = {
        key: from_mapping(hints[key], value, f"{where}.{key}")
        for key, value in given.items()
        if key in names and dataclasses.is_dataclass(hints[key]) and isinstance(value, Mapping)
    }
    settings = cls(**{key: value for key, value in given.items() if key in names} | nested)
    wrong = out_of_range(settings, where)
    if wrong:
        raise MushroomError(wrong)
    return settings


def settings_dict(settings: Any) -> dict[str, Any]:
    """A schema instance as plain values, without Hydra's ``_target_``-style keys (for hparams)."""
    return {key: value for key, value in dataclasses.asdict(settings).items() if not key.startswith("_")}


# -- data ---------------------------------------------------------------------------------------------
@dataclass
class Augmentation:
    """``data.augment``: training-time augmentation strengths; 0 switches a step off."""

    scale: list[float] = field(default_factory=lambda: [0.25, 1.0])
    ratio: list[float] = field(default_factory=lambda: [0.75, 1.3333])
    hflip: float = ranged(0.5, PROBABILITY)
    vflip: float = ranged(0.0, PROBABILITY)
    rotate: float = ranged(15.0, Range(0, 180))
    brightness: float = ranged(0.3, NON_NEGATIVE)
    contrast: float = ranged(0.3, NON_NEGATIVE)
    saturation: float = ranged(0.3, NON_NEGATIVE)
    hue: float = ranged(0.03, Range(0, 0.5))
    color_jitter_p: float = ranged(0.8, PROBABILITY)
    # Share of photos shown in grey: the genus must be told from shape, gills and texture too, not from
    # one source's colour cast alone.
    grayscale: float = ranged(0.0, PROBABILITY)
    # Share of photos blurred (Gaussian, sigma 0.5-2 px): phone photos out of focus or shaken.
    blur: float = ranged(0.0, PROBABILITY)
    # Share of photos with one rectangle (2-33% of the crop) replaced by noise (random erasing, Zhong et al.
    # 2017): the genus must be told from what is left, not from one region, a background or a framing.
    erase: float = ranged(0.0, PROBABILITY)
    # Share of photos lit by another colour temperature (Planckian jitter, a black body at 3,000-15,000 K:
    # candle-warm to shade-blue): the colour cast of one source's light or white balance is not the genus.
    illuminant: float = ranged(0.0, PROBABILITY)


@dataclass
class PrepareSettings:
    """``data.prepare``: audit -> leak-free manifest -> resized cache (``python -m mushroom.data.prepare``);
    training then reads the manifest and the cache. Outputs: ``<processed_root>/<name>/`` unless ``dir``."""

    enabled: bool = False
    dir: str | None = None
    # Shorter side of the cached copies (null = no cache, read the originals).
    cache_size: int | None = ranged(256, COUNT)
    # Images with a shorter side below this are excluded.
    min_size: int = ranged(32, NON_NEGATIVE)
    # Perceptual hashes (64 bits) this close are near-duplicates.
    near_duplicate_distance: int = ranged(10, Range(0, 64))
    # Leave out duplicate groups whose copies carry different labels.
    drop_conflicting: bool = True
    # Keep at most this many images per class (whole duplicate groups are dropped; rare classes keep all).
    max_per_class: int | None = ranged(None, COUNT)
    # Name the genus behind each image folder ("Genus species", "Genus_species", a bare genus, or a common
    # name of the 215-species set); names that none of these resolves are listed, not guessed.
    genus_names: bool = False
    # Check labels against configs/safety/<table>.yaml: a photo whose folders name a genus with deadly
    # species but whose label is edible or conditionally_edible is a conflict.
    safety_table: str | None = None
    # What the manifest does with those photos: drop | keep | relabel (as deadly).
    safety_conflicts: str = "drop"
    # What the publisher counts ({version, total, classes, per_class: {label: files}}); the audit warns,
    # naming the classes, where the files found differ (an incomplete or doubled download).
    published_counts: dict[str, Any] | None = None
    # Keep each source family (the file-name stem before its number, e.g. amanita_vaginata_*) on one side
    # of the split where it holds at most source_max_share of its class: test figures on unseen sources.
    split_by_source: bool = False
    # Keep source families out of training for the validation photos too (null: as split_by_source). The
    # checkpoint, the temperature and every threshold are fitted on validation photos: fitted on sources the
    # model trained on, they promise new users' photos more than they keep.
    validate_by_source: bool | None = None
    source_max_share: float = ranged(0.5, Range(0, 1, low_open=True))
    # The same for the validation parts (null: source_max_share). Validation takes about val_fraction of a
    # class: a family larger than that, kept whole, can fill the class's validation alone (a 209-photo Amanita
    # family did at val_fraction=0.2, and its fold refused every other genus as "not sure").
    val_source_max_share: float | None = ranged(None, Range(0, 1, low_open=True))
    # Stratify validation by class within each test fold's photos: every fold validates on about val_fraction
    # of each class, from groups smaller than that share (a larger one would be the class's validation alone;
    # it trains). Off: one partition for all folds, where a large source family can leave a fold's validation
    # without a class (with whole sources held out, a fold of the shared photos had no Amanita).
    val_by_fold: bool = False

    def __post_init__(self) -> None:
        check_safety_policy(self.safety_conflicts)  # at composition, not after the audit


@dataclass
class OpenSetSettings:
    """``data.open_set``: photos that are none of the classes, for outlier exposure
    (``mushroom.core.open_set``) and for measuring "not a mushroom" / "not a genus I know"
    (``mushroom.data.negatives``). No negatives: the model says "not a genus I know" from its energy score
    alone."""

    # A folder of both kinds: <root>/not_mushroom/ for non-mushrooms, any other folder for other genera.
    root: str | None = None
    # Mushroom photos whose genus (named by their folders) is none of the classes: folders, or Kaggle
    # datasets as kaggle:owner/name[/versions/N] (found in kagglehub's cache or downloaded into
    # download_dir, the version recorded). Photos of a known genus, or of no genus a rule names, are left out.
    other_genera: list[str] = field(default_factory=list)
    # Photos that are not mushrooms, folders or kaggle:... datasets; folders named mushroom or fungus are
    # left out.
    not_mushroom: list[str] = field(default_factory=list)
    download_dir: str = "data/raw/negatives"
    # At most this many photos of each other genus, and of non-mushrooms from each source (chosen by a
    # seeded hash): a 100,000-photo archive costs minutes, and no genus swamps the others.
    max_per_genus: int | None = ranged(200, COUNT)
    max_not_mushroom: int | None = ranged(3000, COUNT)
    # false: a missing folder is a warning (train without it), not an error.
    required: bool = True
    # Share of each training epoch's draws that are negatives (the epoch grows to keep the known ones).
    share: float = ranged(0.2, Range(0, 1, low_open=True, high_open=True))
    # true: each training draw of a negative is shrunk to the shorter side of a known training photo drawn at
    # random, so that sharpness does not tell the two apart (mushroom.data.resolution).
    match_resolution: bool = False
    # Groups (another genus, across sources; a non-mushroom category or photo) are held out by fold like
    # the known photos (the test fold is data.fold of data.num_folds); this share of the other folds'
    # groups validates.
    val_fraction: float = ranged(0.2, SHARE_BELOW_ONE)


@dataclass
class TeacherSettings:
    """``data.teacher``: a frozen pretrained network whose probe gives each training photo soft targets
    (:mod:`mushroom.data.teacher`), which ``model.distill_weight`` mixes into the loss."""

    # A timm model (e.g. vit_small_patch14_dinov2.lvd142m); null = no teacher.
    name: str | None = None
    pretrained: bool = True
    # The side of the square the teacher sees each photo at (a ViT's position grid follows it).
    input_size: int = ranged(224, COUNT)
    # Inverse L2 strength (C) of the logistic-regression probe on its features.
    strength: float = ranged(0.1, POSITIVE)
    # Cross-fitting: each photo's targets come from a probe fitted on the other folds - 1 parts.
    folds: int = ranged(5, Range(2))


@dataclass(frozen=True)
class SplitSettings:
    """Which photos test, validate and train: fold ``fold`` of a stratified, grouped ``num_folds``-fold
    partition tests, ``val_fraction`` of the rest validates. No defaults: they are :class:`DataConfig`'s."""

    num_folds: int
    fold: int | None
    val_fraction: float
    seed: int


@dataclass
class DataConfig:
    """The ``data`` group: any ``<root>/<class>/<image>`` folder (``data=folder data.root=DIR``)."""

    _target_: str = "mushroom.data.MushroomDataModule"
    root: str = MISSING
    # Name of the processed-data folder (null = the name of data.root).
    name: str | None = None
    # null = what the network's pretrained weights expect (timm pretrained_cfg).
    image_size: int | None = ranged(None, COUNT)
    crop_pct: float | None = ranged(None, Range(0, 1, low_open=True))
    mean: list[float] | None = None
    std: list[float] | None = None
    batch_size: int = ranged(32, COUNT)
    # null = batch_size.
    eval_batch_size: int | None = ranged(None, COUNT)
    # null = one per CPU core but one, at most 8; none on two cores or fewer (loading in the main process
    # is faster there, see benchmarks/train_throughput.py).
    num_workers: int | None = ranged(None, NON_NEGATIVE)
    # null = when CUDA is available.
    pin_memory: bool | None = None
    persistent_workers: bool = True
    # Test split = fold `fold` of a stratified `num_folds`-fold split (5 -> 4:1), grouped so that
    # duplicates stay on one side; val = val_fraction of the rest. fold null: no test split, every photo
    # but validation trains (the model to ship once cross-validation has measured the recipe).
    num_folds: int = ranged(5, Range(2))
    fold: int | None = ranged(0, NON_NEGATIVE)
    val_fraction: float = ranged(0.1, SHARE_BELOW_ONE)
    # Train on about this share of each class's training photos (whole duplicate groups, nested across
    # shares at one seed); validation and test photos unchanged. A learning curve: invoke cv with 0.5, 1.
    train_fraction: float = ranged(1.0, Range(0, 1, low_open=True))
    seed: int = 42
    balanced_sampling: bool = False
    # With balanced_sampling: 1 = every class equally often, 0.5 = halfway to natural frequencies.
    balance_power: float = ranged(1.0, PROBABILITY)
    # Within each class, source families (file-name stems: one scrape, one photographer) drawn in
    # proportion to size ** (1 - power): 0 = as they come, 1 = each family equally often. Class balance
    # is kept. With or without balanced_sampling.
    source_balance_power: float = ranged(0.0, PROBABILITY)
    decode_at_size: bool = True
    # A Kaggle dataset (owner/name[/versions/N]) that kagglehub downloads when data.root is empty.
    kaggle_handle: str | None = None
    augment: Augmentation = field(default_factory=Augmentation)
    # Map folder names anywhere on an image's path to labels (e.g. Deadly -> deadly); null = class folders.
    label_map: dict[str, str] | None = None
    processed_root: str = "data/processed"
    prepare: PrepareSettings = field(default_factory=PrepareSettings)
    open_set: OpenSetSettings = field(default_factory=OpenSetSettings)
    teacher: TeacherSettings = field(default_factory=TeacherSettings)

    @property
    def split(self) -> SplitSettings:
        return SplitSettings(self.num_folds, self.fold, self.val_fraction, self.seed)

    @property
    def processed_dir(self) -> Path:
        """Where prepare writes: ``prepare.dir``, else ``<processed_root>/<name or the folder's name>``."""
        if self.prepare.dir:
            return Path(self.prepare.dir).expanduser()
        return Path(self.processed_root).expanduser() / (
            self.name or Path(self.root).expanduser().resolve().name
        )


def data_config(cfg: Any) -> DataConfig:
    """The ``data`` node of a composed config as a :class:`DataConfig` (interpolations resolved)."""
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(cfg.data, resolve=True)
    assert isinstance(values, dict)
    return from_mapping(DataConfig, {str(key): value for key, value in values.items()}, "data")


# -- model --------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """The ``model`` group: a timm network (``model.name``: any timm model) or our small CNN."""

    _target_: str = "mushroom.models.MushroomClassifier"
    # model.optimizer and model.scheduler reach the model as config (kept in its checkpoint); it builds them.
    _recursive_: bool = False
    # timm ResNet50 (A1 recipe, ImageNet-1k); any timm model name, or small_cnn (ours).
    name: str = "resnet50.a1_in1k"
    pretrained: bool = True
    # From the optimizer and scheduler groups (# @package model.optimizer): model.optimizer.lr, ...
    # MISSING here keeps what those groups placed (a merge does not overwrite a value with ???).
    optimizer: Any = MISSING
    scheduler: Any = MISSING
    # The pretrained backbone learns at lr * backbone_lr_scale; the new head at lr.
    backbone_lr_scale: float = ranged(0.1, NON_NEGATIVE)
    # Layer-wise lr decay (ViT fine-tuning): each layer below the head learns layer_decay times slower than
    # the one above it (e.g. 0.75); null = off.
    layer_decay: float | None = ranged(None, Range(0, 1, low_open=True))
    label_smoothing: float = ranged(0.1, SHARE_BELOW_ONE)
    # Mixup / CutMix: Beta(alpha, alpha) blend strength, 0 = off (e.g. 0.2 and 1.0); mix_prob = share of
    # batches mixed (CutMix or Mixup, half each when both are on). Not applied during head_only_epochs.
    mixup_alpha: float = ranged(0.0, NON_NEGATIVE)
    cutmix_alpha: float = ranged(0.0, NON_NEGATIVE)
    mix_prob: float = ranged(1.0, PROBABILITY)
    # MixStyle (training only): the outputs of these sub-modules (e.g. [blocks.1, blocks.2, blocks.3]) get
    # per-photo channel statistics blended with another photo's in the batch, on mixstyle_prob of the
    # batches, blend share ~ Beta(mixstyle_alpha, mixstyle_alpha); [] = off. Frozen modules may be named.
    mixstyle_layers: list[str] = field(default_factory=list)
    mixstyle_prob: float = ranged(0.5, PROBABILITY)
    mixstyle_alpha: float = ranged(0.1, POSITIVE)
    class_weighted_loss: bool = False
    # Distillation: this share of the loss is the cross-entropy against data.teacher's soft targets, the
    # rest the usual loss on the labels; the teacher's probabilities and the logits both softened by
    # distill_temperature (Hinton et al., 2015; the soft part times its square). 0 = off.
    distill_weight: float = ranged(0.0, PROBABILITY)
    distill_temperature: float = ranged(1.0, POSITIVE)
    # Extra loss on photos of genera with deadly species for the probability put on harmless genera
    # (needs the safety table to cover the classes); 0 = plain cross-entropy.
    danger_weight: float = ranged(0.0, NON_NEGATIVE)
    drop_rate: float = ranged(0.2, SHARE_BELOW_ONE)
    drop_path_rate: float = ranged(0.05, SHARE_BELOW_ONE)
    # Channels of our small CNN's stages (model=cnn).
    cnn_channels: list[int] = field(default_factory=lambda: [32, 64, 128, 256])
    # Sub-modules (by name, e.g. conv1 or layer1) whose weights and BatchNorm statistics stay fixed.
    freeze: list[str] = field(default_factory=list)
    # Train only the new head for this many epochs first (linear probe), then fine-tune the rest.
    head_only_epochs: int = ranged(0, NON_NEGATIVE)
    # Test-time mirroring: average the prediction of each image and its mirror image.
    tta_hflip: bool = False
    # Test-time centre view: also the centre share of the input, enlarged back to its size; the genus
    # probabilities are averaged over both, the open-set score is the centre's (e.g. 0.875 with
    # data.crop_pct=1.0: the whole shorter side and timm's evaluation crop); null = off.
    tta_centre_crop: float | None = ranged(None, Range(0, 1, low_open=True, high_open=True))
    channels_last: bool = True
    # torch.compile the network (first steps are slow while it compiles).
    compile: bool = False

    def __post_init__(self) -> None:
        # Built in code rather than composed: no optimizer or schedule given (AdamW, constant lr).
        self.optimizer = None if self.optimizer == MISSING else self.optimizer
        self.scheduler = None if self.scheduler == MISSING else self.scheduler


#: Hyper-parameters older checkpoints carry that are settings no more (now model.optimizer/scheduler).
LEGACY_MODEL_KEYS = ("lr", "weight_decay", "warmup_epochs", "min_lr_ratio")


# -- service ------------------------------------------------------------------------------------------
@dataclass
class ServerLimits:
    """``server``: what a connection may cost. A connection must send its request line and headers within
    head_timeout_s (idle and trickling clients are closed) and in at most max_header_kb (more gets 431);
    past max_requests being answered at once, or max_connections open, a request gets 503 (idle
    connections do not count towards max_requests); idle keep-alive connections close after keep_alive_s;
    a shutdown waits shutdown_s for open requests."""

    # What bounds memory is the byte and pixel budgets (uploads_in_memory_mb, decode_megapixels); these counts
    # bound tasks and sockets, high enough that slow uploads cannot fill them before the upload timeout.
    max_requests: int = ranged(500, COUNT)
    max_connections: int = ranged(2000, COUNT)
    max_header_kb: int = ranged(64, COUNT)
    head_timeout_s: float = ranged(10.0, POSITIVE)
    keep_alive_s: float = ranged(5.0, NON_NEGATIVE)
    shutdown_s: float = ranged(10.0, NON_NEGATIVE)


@dataclass
class ServeSettings:
    """``python -m mushroom.serve``: what the service accepts and how much it may hold."""

    # An ONNX file written by mushroom.export (class names, preprocessing and safety notes are inside it).
    model_path: str = MISSING
    top_k: int = ranged(3, COUNT)
    # Uploads above this size get 413; so do images with more pixels than max_megapixels (decompression
    # bombs).
    max_upload_mb: float = ranged(10.0, POSITIVE)
    max_megapixels: float = ranged(64.0, POSITIVE)
    # Images with one side more than max_aspect_ratio times the other get 422: they are not photos.
    max_aspect_ratio: float = ranged(10.0, Range(1))
    # Answer "not sure" below this probability; null = the threshold fitted on validation, stored in the
    # model.
    abstain_threshold: float | None = None
    # Answer "not a mushroom" / "not a genus I know" below the model's fitted open-set threshold; false:
    # never.
    open_set: bool = True
    # Each answered photo's statistics (JSON lines), for python -m mushroom.drift; null = not recorded.
    stats_path: str | None = None
    # The statistics file is renamed to <name>.1 (replacing the previous one) when it reaches this size.
    stats_max_mb: float = ranged(100.0, POSITIVE)
    # ONNX Runtime threads per photo (null = one per core) and photos in ONNX Runtime at once (1 is fastest
    # on a CPU, where one photo already uses every core).
    threads: int | None = ranged(None, COUNT)
    concurrent_inferences: int = ranged(1, COUNT)
    # All requests together: pixels being decoded at once (more waits, up to queue_timeout_s, then 503) and
    # upload bytes held in memory while arriving (more gets 503 at once).
    decode_megapixels: float = ranged(80.0, POSITIVE)
    uploads_in_memory_mb: float = ranged(256.0, POSITIVE)
    queue_timeout_s: float = ranged(30.0, POSITIVE)
    # An upload must arrive within this time (408), however slowly its client sends it.
    upload_timeout_s: float = ranged(30.0, POSITIVE)
    # The OpenAPI document (/openapi.json) and its pages (/docs, /redoc); false hides them on a public host.
    api_docs: bool = True
    host: str = "127.0.0.1"
    port: int = ranged(8000, Range(0, 65535))
    log_level: str = "info"
    server: ServerLimits = field(default_factory=ServerLimits)


@dataclass
class ServeConfig(ServeSettings):
    """``configs/serve.yaml``: the service's settings plus what every entry point's config holds."""

    task_name: str = "serve"
    paths: Any = MISSING


# -- clusters -----------------------------------------------------------------------------------------
@dataclass
class RayClusterConfig:
    """``cluster=ray``: the run's training processes placed by Ray (``mushroom.cluster.ray_train``)."""

    # The Ray cluster to join: null joins the one RAY_ADDRESS names (ray job submit sets it), or starts one
    # on this machine; "auto" joins the one `ray start` began here.
    address: str | None = None
    # Training processes (DDP ranks); each gets cpus_per_worker CPUs and, with use_gpu, one GPU.
    num_workers: int = ranged(2, COUNT)
    use_gpu: bool = False
    cpus_per_worker: float = ranged(1.0, POSITIVE)
    # Where Ray keeps its own records of the run (null: <run dir>/ray); a shared or s3:// path on a cluster.
    storage_path: str | None = None


SCHEMAS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "serve": ServeConfig,
    "cluster": RayClusterConfig,
}


def schema_for(target: str) -> type | None:
    """The schema whose objects are built by ``target`` (a ``_target_``), if one is."""
    for schema in SCHEMAS.values():
        field_default = {f.name: f.default for f in dataclasses.fields(schema)}.get("_target_")
        if field_default == target:
            return schema
    return None


def register_schemas() -> None:
    """Store each schema as ``<group>_schema`` in Hydra's ConfigStore, outside any group (so ``--help``
    lists no group of schemas); idempotent."""
    store = ConfigStore.instance()
    for name, schema in SCHEMAS.items():
        store.store(name=f"{name}_schema", node=schema)


register_schemas()
