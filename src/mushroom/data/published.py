"""An audit's counts set beside what the dataset's publisher says it holds
(``data.prepare.published_counts``), so that a download that lost or gained photos is noticed."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from mushroom.data.audit_report import AuditReport

log = logging.getLogger(__name__)


def compare_with_published(report: AuditReport, published: Mapping[str, Any]) -> list[str]:
    """Warnings, naming the classes, where the files found differ from the publisher's counts.

    ``published``: ``per_class`` (label -> files), ``total`` (files in all), ``classes`` (how many),
    ``version`` (the dataset version they describe). Files are counted whether usable or not, as the
    publisher counts them; copies of the whole set are counted once and reported on their own.
    """
    found = report.files_per_class()
    version = published.get("version")
    of_version = f" (version {version})" if version is not None else ""
    warnings = []
    per_class = dict(published.get("per_class") or {})
    short = {name: n for name, n in per_class.items() if found.get(name, 0) < n}
    extra = {name: n for name, n in per_class.items() if found.get(name, 0) > n}
    if short:
        listing = _listing(f"{name} {found.get(name, 0)} of {n}" for name, n in short.items())
        warnings.append(
            f"Fewer files than published{of_version}: {listing}. The download may be incomplete: "
            "delete the folder and download again, or check that data.root is the whole archive."
        )
    if extra:
        listing = _listing(f"{name} {found[name]} of {n}" for name, n in extra.items())
        warnings.append(
            f"More files than published{of_version}: {listing}. The folder may hold the set twice or "
            "another version; the audit report's duplicate groups say which files repeat."
        )
    unexpected = sorted(set(found) - set(per_class)) if per_class else []
    if unexpected:
        warnings.append(f"Classes the published set does not have: {_listing(unexpected)}.")
    total = published.get("total")
    if total is not None and sum(found.values()) != total:
        warnings.append(f"{sum(found.values())} files in all, the publisher counts {total}{of_version}.")
    classes = published.get("classes")
    if classes is not None and len(found) != classes:
        warnings.append(f"{len(found)} classes, the publisher counts {classes}{of_version}.")
    copies = Counter(problem.label for problem in report.excluded if problem.kind == "copy")
    if copies:
        listing = _listing(f"{name} {n}" for name, n in sorted(copies.items()))
        warnings.append(
            f"The archive holds the set more than once: {sum(copies.values())} files are copies of files "
            f"found before ({listing}); each is counted once."
        )
    return warnings


def _listing(items: Iterable[str], limit: int = 12) -> str:
    """``a, b, c`` or, past ``limit`` items, ``a, b, ... and 203 more``: 215 classes make no log line."""
    items = list(items)
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
