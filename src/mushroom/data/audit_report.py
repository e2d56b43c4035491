"""What an audit found, as the report that ``audit.json`` holds: every usable image with its content hashes
and duplicate group, the files left out and why, the duplicate groups, and the photos whose label the
safety table contradicts."""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ImageRecord:
    """One usable image: where it is (relative to the data root), its label and fingerprints."""

    path: str
    label: str
    width: int
    height: int
    mode: str
    sha256: str
    phash: str
    group: int = -1


@dataclass
class Problem:
    path: str
    kind: str  # undecodable | truncated | not_an_image | too_small | unlabelled | copy | converted
    detail: str
    label: str | None = None  # the class the file would have had, when it has one


@dataclass
class DuplicateGroup:
    id: int
    kind: str  # exact | near
    paths: list[str]
    labels: list[str]

    @property
    def conflicting(self) -> bool:
        return len(set(self.labels)) > 1


@dataclass
class SafetyConflict:
    """A photo whose folders name a genus with deadly species but whose label says it can be eaten."""

    path: str
    label: str
    genus: str


@dataclass
class AuditReport:
    root: str
    fingerprint: str
    settings: dict
    images: list[ImageRecord] = field(default_factory=list)
    excluded: list[Problem] = field(default_factory=list)
    converted: list[Problem] = field(default_factory=list)
    duplicate_groups: list[DuplicateGroup] = field(default_factory=list)
    # With settings["genus_names"]: the genus each image folder stands for, and the names none matched.
    folder_genera: dict[str, str] = field(default_factory=dict)
    unknown_folders: list[str] = field(default_factory=list)
    # With settings["safety_table"]: labels the safety table contradicts.
    safety_conflicts: list[SafetyConflict] = field(default_factory=list)
    # Class folders without a single file: a class the user gave but no model could learn.
    empty_classes: list[str] = field(default_factory=list)

    @property
    def class_names(self) -> list[str]:
        return sorted({image.label for image in self.images})

    def conflicting_groups(self) -> list[DuplicateGroup]:
        return [group for group in self.duplicate_groups if group.conflicting]

    def summary(self) -> dict:
        exact = [g for g in self.duplicate_groups if g.kind == "exact"]
        near = [g for g in self.duplicate_groups if g.kind == "near"]
        return {
            "usable_images": len(self.images),
            "per_class": dict(sorted(Counter(image.label for image in self.images).items())),
            "excluded": dict(Counter(problem.kind for problem in self.excluded)),
            "converted_modes": dict(Counter(problem.detail for problem in self.converted)),
            "exact_duplicate_groups": len(exact),
            "exact_duplicate_images": sum(len(g.paths) for g in exact),
            "near_duplicate_groups": len(near),
            "near_duplicate_images": sum(len(g.paths) for g in near),
            "conflicting_label_groups": len(self.conflicting_groups()),
            "conflicting_label_pairs": self.conflicting_label_pairs(),
            "safety_label_conflicts": len(self.safety_conflicts),
            "safety_label_conflicts_by_genus": dict(
                sorted(Counter(c.genus for c in self.safety_conflicts).items())
            ),
            "unknown_folders": len(self.unknown_folders),
        }

    def conflicting_label_pairs(self) -> dict[str, int]:
        """``"edible / poisonous": n``: how many duplicate groups carry each pair of labels, most first."""
        pairs: Counter[str] = Counter()
        for group in self.conflicting_groups():
            labels = sorted(set(group.labels))
            pairs.update(f"{a} / {b}" for i, a in enumerate(labels) for b in labels[i + 1 :])
        return dict(pairs.most_common())

    def files_per_class(self) -> Counter[str]:
        """Files found under each label, usable or not, copies of the set left out."""
        found = Counter(image.label for image in self.images)
        found.update(p.label for p in self.excluded if p.label is not None and p.kind != "copy")
        return found

    def to_json(self) -> dict:
        data = asdict(self)
        data["summary"] = self.summary()
        for group, raw in zip(self.duplicate_groups, data["duplicate_groups"], strict=True):
            raw["conflicting"] = group.conflicting
        return data

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1))
        return path

    @classmethod
    def read(cls, path: str | Path) -> AuditReport:
        data = json.loads(Path(path).read_text())
        return cls(
            root=data["root"],
            fingerprint=data["fingerprint"],
            settings=data["settings"],
            images=[ImageRecord(**raw) for raw in data["images"]],
            excluded=[Problem(**raw) for raw in data["excluded"]],
            converted=[Problem(**raw) for raw in data["converted"]],
            duplicate_groups=[
                DuplicateGroup(**{k: v for k, v in raw.items() if k != "conflicting"})
                for raw in data["duplicate_groups"]
            ],
            folder_genera=data.get("folder_genera", {}),
            unknown_folders=data.get("unknown_folders", []),
            safety_conflicts=[SafetyConflict(**raw) for raw in data.get("safety_conflicts", [])],
            empty_classes=data.get("empty_classes", []),
        )
