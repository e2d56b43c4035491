"""Where an Optuna study lives, so that several workers share it: a database or a journal file.

Workers share a study through its storage (``search.storage``): an RDB URL (PostgreSQL, MySQL, SQLite) or a
journal file on shared storage. :class:`StudyLock` makes the two steps that race across workers atomic:
creating the study (its tables, on a fresh database) and "count the trials, start one if the budget allows",
so that the workers together run exactly ``search.n_trials`` trials. A database that cannot be reached is
named in one line (:func:`database_error`).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from mushroom.errors import MushroomError

log = logging.getLogger(__name__)


def open_storage(url: str | None) -> Any:
    """``None`` (in memory), an RDB URL (``sqlite:///x.db``, ``postgresql://...``), or a journal file path."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not url:
        return None
    if "://" in url:
        return url
    path = Path(url).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def shown(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    if "://" not in url:
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: say so through Optuna's own error later
        return url.split("@")[-1]


def database_error(url: str, error: BaseException) -> MushroomError:
    """One line for a study database that cannot be reached or went away (``error``: SQLAlchemy's, or
    Optuna's ``StorageInternalError`` around it)."""
    cause: BaseException | None = error
    while cause is not None and getattr(cause, "orig", None) is None:  # the driver's own words, if any
        cause = cause.__cause__ or cause.__context__
    reason = str(getattr(cause, "orig", None) or error).strip().splitlines()[0]
    return MushroomError(
        f"The study's database {shown(url)} cannot be reached ({reason}). Is the server running, and are "
        "search.storage's host, port, user and database right? Trials that finished are kept in the study: "
        "run the same command again to go on."
    )


class StudyLock:
    """A lock that every worker of a study takes around creating the study and starting a trial.

    PostgreSQL: an advisory lock; MySQL: ``GET_LOCK``; SQLite and journal files: a lock on a file beside
    the study's file. Held for milliseconds (never while a trial trains). A study in memory has one worker
    and needs none.
    """

    def __init__(self, url: str | None, study_name: str) -> None:
        self.url = url or ""
        self.study_name = study_name
        digest = hashlib.blake2b(study_name.encode(), digest_size=8).digest()
        self.key = int.from_bytes(digest, "big", signed=True)  # PostgreSQL's advisory locks take a bigint

    @contextmanager
    def held(self) -> Iterator[None]:
        scheme = self.url.split("://", 1)[0].split("+", 1)[0] if "://" in self.url else ""
        if scheme in ("postgresql", "postgres", "mysql", "mariadb"):
            with self._database_lock(scheme):
                yield
        elif scheme == "sqlite" or (self.url and "://" not in self.url):
            with self._file_lock():
                yield
        else:
            yield

    @contextmanager
    def _database_lock(self, scheme: str) -> Iterator[None]:
        from sqlalchemy import create_engine, text
        from sqlalchemy.exc import SQLAlchemyError
        from sqlalchemy.pool import NullPool

        try:
            engine = create_engine(self.url, poolclass=NullPool)
            connection = engine.connect()
        except ModuleNotFoundError as error:
            raise MushroomError(
                f"search.storage={shown(self.url)} needs the database's Python driver ({error.name}): "
                "pip install 'mushroom[postgres]' for PostgreSQL, or the driver the URL names."
            ) from error
        except SQLAlchemyError as error:
            raise database_error(self.url, error) from error
        name = f"mushroom-study-{self.key}"
        take, release = (
            ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)")
            if scheme.startswith("postgres")
            else ("SELECT GET_LOCK(:name, 600)", "SELECT RELEASE_LOCK(:name)")
        )
        try:
            connection.execute(text(take), {"key": self.key, "name": name})
            yield
        finally:
            with suppress(SQLAlchemyError):  # the connection went away: so did its lock
                connection.execute(text(release), {"key": self.key, "name": name})
            connection.close()
            engine.dispose()

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        from sqlalchemy.engine import make_url

        path = Path(make_url(self.url).database or "study" if "://" in self.url else self.url).expanduser()
        lock = path.with_name(path.name + ".study-lock")  # not ".lock": Optuna's journal lock is that file
        lock.parent.mkdir(parents=True, exist_ok=True)
        with lock.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
