"""The JSON-lines file of answered photos' statistics, which ``mushroom.drift`` compares with training.

Recording is a side feature: a full disk, a read-only folder or a file that cannot be opened must never
cost an answer. Each failure is logged once (not once per photo) and counted, and recording resumes by
itself when writing works again. The file is rotated at ``max_mb`` (one ``.1`` generation is kept), so
a long-running service does not fill its disk.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

log = logging.getLogger(__name__)


class StatsRecorder:
    """Appends one JSON line per answered photo to ``path`` (``None``: records nothing)."""

    def __init__(self, path: str | None, max_mb: float = 100.0) -> None:
        self.path = Path(path) if path else None
        self.max_bytes = int(max_mb * 2**20)
        self.file: TextIO | None = None
        self.failures = 0
        self._written = 0
        if self.path is not None:
            self._open()

    def record(self, row: dict[str, Any]) -> bool:
        """Append ``row`` with the time; ``False`` (and a log line the first time) if it could not be."""
        if self.path is None:
            return True
        when = datetime.now(UTC).isoformat(timespec="seconds")
        line = json.dumps({"time": when, **row}) + "\n"
        try:
            if self.file is None:
                self._open(quiet=True)
            if self.file is None:
                return False
            if self._written + len(line) > self.max_bytes:
                self._rotate()
            self.file.write(line)
            self.file.flush()
            self._written += len(line)
        except OSError as error:
            self._failed(error)
            self._close_quietly()
            return False
        return True

    def close(self) -> None:
        self._close_quietly()

    def _open(self, quiet: bool = False) -> None:
        assert self.path is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.path.open("a", encoding="utf-8")
            self._written = self.path.stat().st_size if self.path.is_file() else 0
        except OSError as error:
            self.file = None
            if not quiet:
                self._failed(error)

    def _rotate(self) -> None:
        assert self.path is not None
        self._close_quietly()
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self._open()

    def _failed(self, error: OSError) -> None:
        self.failures += 1
        if self.failures == 1:
            log.warning(
                "Cannot record input statistics to %s (%s); answering goes on without them. "
                "Fix the path or set stats_path=null.",
                self.path,
                error,
            )

    def _close_quietly(self) -> None:
        if self.file is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.file = None
