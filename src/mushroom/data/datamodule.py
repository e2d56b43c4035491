"""``MushroomDataModule``: class folders -> audit -> manifest and its split -> augmented, optionally balanced
batches."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from mushroom.core.open_set import NEGATIVE_KINDS
from mushroom.core.preprocessing import Preprocessing
from mushroom.data.dataset import ImageDataset, seed_worker_transform
from mushroom.data.folder import ImageFolderIndex
from mushroom.data.kaggle import DataSource, locate_dataset, obtain_dataset
from mushroom.data.manifest import Manifest
from mushroom.data.negatives import NegativeSet, negative_sources, scan_negatives
from mushroom.data.prepare import PreparedData, audit_and_split, prepare_dataset, wait_for_prepared
from mushroom.data.resolution import ResolutionMatch
from mushroom.data.sampling import EpochLoader, EpochSampler
from mushroom.data.splits import Split, source_balance_weights, split_from_partitions, training_share
from mushroom.data.transforms import eval_transform, train_transform
from mushroom.errors import MushroomError
from mushroom.schemas import DataConfig, from_mapping, settings_dict

log = logging.getLogger(__name__)


def default_num_workers() -> int:
    """One loader process per core but one, at most 8; none on one or two cores.

    With two cores, a loader process competes with the training step's own threads: loading in the
    main process is faster there (measured with benchmarks/train_throughput.py, see the README).
    """
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores - 1)


def _on_global_rank_zero() -> bool:
    """Whether this process is global rank 0 (Lightning sets the rank; a lone process is rank 0)."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


class MushroomDataModule(L.LightningDataModule):
    """Images in ``<root>/<class>/<image>`` folders, audited and split by the manifest
    (:func:`mushroom.data.prepare.audit_and_split`; read from ``data.prepare``'s files when enabled).

    With ``class_names`` given (e.g. from a checkpoint) labels follow that order and the folder may
    hold a subset of those classes. ``test_on_all`` makes every image part of the test split, for
    evaluating a trained model on a whole folder. ``open_set`` (:class:`OpenSetSettings`) adds negative
    photos to training as extra classes, and holds some out for calibration and the report.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        class_names: Sequence[str] | None = None,
        test_on_all: bool = False,
        **settings: Any,
    ) -> None:
        """``settings``: any field of :class:`mushroom.schemas.DataConfig`, whose defaults apply."""
        super().__init__()
        config = from_mapping(DataConfig, {"root": str(root), **settings}, "data")
        self.config = config
        self.save_hyperparameters(
            settings_dict(config) | {"class_names": class_names, "test_on_all": test_on_all}, logger=False
        )
        self.root = Path(root).expanduser()
        # A datamodule built without a network in mind (null size and normalisation) keeps Preprocessing's
        # defaults (timm's ImageNet evaluation); mushroom.train fills them in from the network's config.
        given: dict[str, Any] = {
            "image_size": config.image_size,
            "crop_pct": config.crop_pct,
            "mean": None if config.mean is None else tuple(config.mean),
            "std": None if config.std is None else tuple(config.std),
        }
        self.preprocessing = Preprocessing(
            **{key: value for key, value in given.items() if value is not None}
        )
        self.augmentation = config.augment
        self.batch_size = config.batch_size
        self.eval_batch_size = config.eval_batch_size or config.batch_size
        self.num_workers = default_num_workers() if config.num_workers is None else config.num_workers
        self.pin_memory = torch.cuda.is_available() if config.pin_memory is None else config.pin_memory
        self.persistent_workers = config.persistent_workers and self.num_workers > 0
        self.fixed_class_names = list(class_names) if class_names is not None else None
        self.prepare_settings = config.prepare
        self.open_set_settings = config.open_set
        self.negatives: NegativeSet | None = None
        self.index: ImageFolderIndex | None = None
        self.split: Split | None = None
        self.manifest: Manifest | None = None
        self.reads_cache = False
        self._prepared: PreparedData | None = None
        self._soft_targets: np.ndarray | None = None

    # -- data on disk -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Rank 0 only: download the Kaggle datasets if needed (the photos, and negatives from Kaggle);
        audit, manifest and cache if enabled."""
        if self.prepare_settings.enabled:
            self.prepared()
        elif self.hparams["kaggle_handle"]:
            obtain_dataset(self.hparams["kaggle_handle"], self.root)
        if not self.hparams["test_on_all"]:
            negative_sources(self.open_set_settings)

    def prepared(self) -> PreparedData:
        """Run (or find up to date) the download -> audit -> manifest -> cache steps, once per instance."""
        if self._prepared is None:
            self._prepared = self._prepare()
        return self._prepared

    def _prepare(self) -> PreparedData:
        """Global rank 0 prepares; every other rank (other nodes included) waits for its result."""
        if not _on_global_rank_zero():
            return wait_for_prepared(self.config)
        return prepare_dataset(self.config)

    def setup(self, stage: str | None = None) -> None:
        if self.index is not None:
            return
        test_on_all = self.hparams["test_on_all"]
        if self.prepare_settings.enabled:
            prepared = self.prepared()
            manifest, source = Manifest.read(prepared.manifest_path), prepared.source
            cache_dir = prepared.cache_dir
        else:  # the same pipeline, in memory
            source = locate_dataset(self.hparams["kaggle_handle"], self.root) or DataSource(self.root)
            manifest, cache_dir = audit_and_split(self.config, source, partition=not test_on_all), None
        self.index, self.split = self._from_manifest(manifest, source.dir, cache_dir)
        labels = self.index.labels
        if test_on_all:
            everything = np.arange(len(labels))
            self.split = Split(train=np.empty(0, dtype=np.int64), val=np.empty(0, np.int64), test=everything)
        else:
            if self.fixed_class_names is None:
                self._check_trainable(self.index, self.split)
            self.negatives = scan_negatives(
                self.open_set_settings,
                self.hparams["seed"],
                self.hparams["fold"],
                self.hparams["num_folds"],
                known=self.index.class_names,
            )
            self._record_negatives()
        counts = {name: int(n) for name, n in zip(self.class_names, self.index.class_counts(), strict=True)}
        log.info(
            "Data %s: %d images in %d classes %s; split train/val/test = %d/%d/%d",
            self.index.root,
            len(labels),
            len(self.class_names),
            counts,
            len(self.split.train),
            len(self.split.val),
            len(self.split.test),
        )

    @staticmethod
    def _check_trainable(index: ImageFolderIndex, split: Split) -> None:
        """A classifier needs two classes or more, each with training images: refuse anything less here,
        in words, rather than deep inside a metric or with a class the model can never learn."""
        if len(index.class_names) < 2:
            found = ", ".join(index.class_names) or "none"
            raise MushroomError(
                f"{index.root} holds {len(index.class_names)} class folder(s) ({found}); a classifier needs "
                "at least two, e.g. root/Amanita/*.jpg and root/Boletus/*.jpg."
            )
        counts = np.bincount(index.labels[split.train], minlength=len(index.class_names))
        missing = [name for name, count in zip(index.class_names, counts, strict=True) if count == 0]
        if missing:
            raise MushroomError(
                f"Class(es) {', '.join(missing)} have no image in the training split of {index.root}. "
                "Add images to them (a few per split at least) or remove them."
            )

    def _record_negatives(self) -> None:
        """``negatives.json`` beside the manifest: where the negatives came from (Kaggle versions included),
        how many of each kind each part holds, and what was left out, so that a result names them."""
        if self.negatives is None or not self.prepare_settings.enabled or not _on_global_rank_zero():
            return
        record = {
            "fold": self.hparams["fold"],
            "num_folds": self.hparams["num_folds"],
            **self.negatives.describe(),
        }
        path = self.config.processed_dir / "negatives.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))

    def _from_manifest(
        self, manifest: Manifest, source_dir: Path, cache_dir: Path | None
    ) -> tuple[ImageFolderIndex, Split]:
        """Index and split as the manifest fixes them; images come from the resized cache if built."""
        self.reads_cache = cache_dir is not None
        index = manifest.index(source_dir, self.fixed_class_names, cache_dir)
        self.manifest = manifest
        folds = np.asarray(manifest.column("fold"))
        # A set too small for k folds is dealt over them and may leave the last ones empty: only a fold
        # past data.num_folds says the manifest was made with other settings.
        if folds.max() >= self.hparams["num_folds"]:
            raise MushroomError(
                f"The manifest of {source_dir} holds {folds.max() + 1} folds, not data.num_folds."
            )
        split = split_from_partitions(folds, np.asarray(manifest.column("val_part")), self.hparams["fold"])
        if self.hparams["train_fraction"] < 1.0:
            groups = np.asarray(manifest.column("group"))
            train = training_share(
                split.train, index.labels, groups, self.hparams["train_fraction"], self.hparams["seed"] + 2
            )
            split = Split(train=train, val=split.val, test=split.test)
        return index, split

    @property
    def class_names(self) -> list[str]:
        if self.index is None:
            raise RuntimeError("call setup() before asking for class names")
        return self.index.class_names

    @property
    def open_set_classes(self) -> int:
        """Extra outputs the network needs for the negatives (one per kind), 0 without negatives."""
        return len(NEGATIVE_KINDS) if self.negatives is not None else 0

    def train_class_counts(self) -> list[int]:
        """Images per class in the training split (for class-weighted losses)."""
        index, split = self.index_and_split()
        return np.bincount(index.labels[split.train], minlength=len(index.class_names)).tolist()

    def index_and_split(self) -> tuple[ImageFolderIndex, Split]:
        """The image index and the split, set up on first use."""
        if self.index is None or self.split is None:
            self.setup()
        assert self.index is not None and self.split is not None
        return self.index, self.split

    # -- loaders ------------------------------------------------------------------------------------
    def dataset(
        self, indices: np.ndarray, train: bool, soft_targets: np.ndarray | None = None
    ) -> ImageDataset:
        index, _ = self.index_and_split()
        paths, labels = [index.paths[i] for i in indices], index.labels[indices]
        return self._images(paths, labels, train, self.reads_cache, soft_targets=soft_targets)

    def _images(
        self,
        paths: list[Path],
        labels: np.ndarray,
        train: bool,
        cached: bool = False,
        resolution: ResolutionMatch | None = None,
        soft_targets: np.ndarray | None = None,
    ) -> ImageDataset:
        transform = (
            train_transform(self.preprocessing, self.augmentation, seed=self.hparams["seed"])
            if train
            else eval_transform(self.preprocessing)
        )
        min_side = self.preprocessing.resize_size if self.hparams["decode_at_size"] else None
        return ImageDataset(
            paths,
            labels,
            transform,
            decode_min_side=min_side,
            # The cache holds clean RGB JPEGs already at training size: OpenCV decodes them fastest.
            decoder="opencv" if cached else "pil",
            seed=self.hparams["seed"],
            resolution=resolution,
            soft_targets=soft_targets,
        )

    def _train_set(self) -> tuple[ImageDataset, list[float] | None, int | None]:
        """The training images with their sampling weights and epoch length.

        With negatives, they join as classes ``C + kind`` and make up ``open_set.share`` of each epoch's
        draws (split evenly between the kinds); the known genera keep their own balance and count.
        ``source_balance_power`` evens out source families within each class on top of the class balance.
        """
        index, split = self.index_and_split()
        known_labels = index.labels[split.train]
        known_paths = [index.paths[i] for i in split.train]
        weights = None
        if self.hparams["balanced_sampling"]:
            counts = np.bincount(known_labels, minlength=len(self.class_names)).astype(np.float64)
            # Class c is drawn with probability proportional to count_c ** (1 - power): 1 evens the
            # classes out, 0.5 meets halfway between even and natural frequencies.
            weights = counts[known_labels] ** -float(self.hparams["balance_power"])
        if self.hparams["source_balance_power"]:
            families = source_balance_weights(known_labels, known_paths, self.hparams["source_balance_power"])
            weights = families if weights is None else weights * families
        if self.negatives is None or not len(self.negatives.select("train")[0]):
            soft = self._teacher_targets(known_paths, known_labels, self.photo_groups(split.train))
            dataset = self.dataset(split.train, train=True, soft_targets=soft)
            return dataset, (weights.tolist() if weights is not None else None), None
        neg_paths, kinds = self.negatives.select("train")
        share = self.open_set_settings.share
        known = np.ones(len(known_labels)) if weights is None else weights
        kind_counts = np.bincount(kinds, minlength=len(NEGATIVE_KINDS)).astype(np.float64)
        negative = share / np.count_nonzero(kind_counts) / kind_counts[kinds]
        paths = known_paths + neg_paths
        labels = np.concatenate([known_labels, len(self.class_names) + kinds])
        resolution = None
        if self.open_set_settings.match_resolution:
            matched = np.arange(len(paths)) >= len(known_labels)
            resolution = ResolutionMatch.of(self._read_sides(split.train), matched)
        groups = self.photo_groups(split.train) + [f"negative {p}" for p in neg_paths]
        # Not cached (the negatives are not in the cache): PIL decodes the known photos too.
        dataset = self._images(
            paths,
            labels,
            train=True,
            resolution=resolution,
            soft_targets=self._teacher_targets(paths, labels, groups),
        )
        all_weights = np.concatenate([(1 - share) * known / known.sum(), negative])
        return dataset, all_weights.tolist(), round(len(known_labels) / (1 - share))

    def photo_groups(self, indices: np.ndarray) -> list[str]:
        """The duplicate group of photos ``indices`` (set up from the manifest, as setup always is)."""
        assert self.manifest is not None, "set up from a manifest first"
        groups = self.manifest.column("group")
        return [f"group {groups[i]}" for i in indices]

    def _teacher_targets(self, paths: list[Path], labels: np.ndarray, groups: list[str]) -> np.ndarray | None:
        """``data.teacher``'s cross-fitted soft targets for the training photos, or None without a teacher.
        Its features are cached beside the manifest when ``data.prepare`` is on."""
        settings = self.config.teacher
        if not settings.name:
            return None
        if self._soft_targets is None:  # the training photos do not change: fitted once per datamodule
            from mushroom.data.teacher import teacher_targets

            cache_dir = self.config.processed_dir / "teacher" if self.prepare_settings.enabled else None
            outputs = len(self.class_names) + self.open_set_classes
            seed = self.hparams["seed"]
            self._soft_targets = teacher_targets(settings, paths, labels, groups, outputs, seed, cache_dir)
        return self._soft_targets

    def _read_sides(self, indices: np.ndarray) -> np.ndarray:
        """Shorter sides of photos ``indices`` as training reads them: the cache shrinks the larger ones."""
        assert self.manifest is not None, "set up from a manifest first"
        sides = np.minimum(self.manifest.column("width"), self.manifest.column("height"))[indices]
        cache_size = self.prepare_settings.cache_size
        return np.minimum(sides, cache_size) if self.reads_cache and cache_size else sides

    def _loader(
        self,
        dataset: ImageDataset,
        train: bool,
        weights: list[float] | None = None,
        num_samples: int | None = None,
    ) -> DataLoader:
        sampler = None
        if train:
            # Order and augmentation from (seed, epoch): a resumed run trains on what the uninterrupted
            # run would have (mushroom.data.sampling).
            sampler = EpochSampler(
                len(dataset), self.hparams["seed"], self._current_epoch, weights, num_samples
            )
        return (EpochLoader if train else DataLoader)(
            dataset,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=sampler,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            # Its own generator, so that starting workers draws nothing from the global one (dropout's).
            generator=torch.Generator().manual_seed(self.hparams["seed"]),
            worker_init_fn=seed_worker_transform,
        )

    def _current_epoch(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.current_epoch) if trainer is not None else 0

    def train_dataloader(self) -> DataLoader:
        dataset, weights, num_samples = self._train_set()
        return self._loader(dataset, True, weights, num_samples)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.index_and_split()[1].val, train=False), train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset(self.index_and_split()[1].test, train=False), train=False)

    def images_dataloader(self, paths: Sequence[Path], labels: Sequence[int] | np.ndarray) -> DataLoader:
        """Any photos, preprocessed for evaluation (e.g. a folder of negatives)."""
        return self._loader(self._images(list(paths), np.asarray(labels, np.int64), train=False), train=False)

    def negative_paths_by_kind(self, part: str) -> dict[str, list[Path]]:
        """The negatives of one part (``val``, ``test``) by kind, for the kinds that have photos there."""
        if self.negatives is None:
            return {}
        paths, kinds = self.negatives.select(part)
        by_kind = {
            kind: [p for p, k in zip(paths, kinds, strict=True) if k == i]
            for i, kind in enumerate(NEGATIVE_KINDS)
        }
        return {kind: chosen for kind, chosen in by_kind.items() if chosen}

    def negatives_by_kind(self, part: str) -> dict[str, DataLoader]:
        """The negatives of one part (``val``, ``test``), one loader per kind that has photos there."""
        return {
            kind: self.images_dataloader(paths, [NEGATIVE_KINDS.index(kind)] * len(paths))
            for kind, paths in self.negative_paths_by_kind(part).items()
        }

    def photo_keys(self, part: str) -> tuple[list[str], list[str]]:
        """Per photo of one part (``val``, ``test``), in its loader's order: its path in the data folder
        (the same on every run and fold) and its duplicate group (photos that are resampled together)."""
        _, split = self.index_and_split()
        assert self.manifest is not None
        chosen = getattr(split, part)
        paths = self.manifest.column("path")
        return [str(paths[i]) for i in chosen], self.photo_groups(chosen)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()
