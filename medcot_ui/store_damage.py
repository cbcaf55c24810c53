"""What to tell a person whose SQLite run store is damaged, instead of SQLAlchemy's traceback: which file, that
it is damaged, and the latest backup to restore (or how to move the file aside when there is none).

A backup is any file that looks like one of this database: ``runs.db.bak``, ``runs.db.backup-2026-12-01``,
``runs-backup.db``, ``runs.db.1`` ... beside it, or a ``.db`` file in a ``backups`` or ``snapshots`` folder of the
data directory. Only one that SQLite can open and that passes its quick check is offered.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

# What SQLite says when the file itself is broken (not a lock, a permission or a missing table).
_DAMAGE = ("file is not a database", "database disk image is malformed", "malformed database schema",
           "file is encrypted or is not a database", "database corrupt")
_BESIDE = ("{name}.bak*", "{name}.backup*", "{name}.[0-9]*", "{stem}-backup*{suffix}", "{stem}.backup*{suffix}",
           "{stem}-*.bak")
_FOLDERS = ("backups", "snapshots")


def explain(exc: BaseException, url: str, home: Path | None = None) -> str | None:
    """:func:`damage_message` when ``exc`` says the SQLite file at ``url`` is broken, else None."""
    path = url.split("///", 1)[-1] if url.startswith("sqlite") else ""
    if not path or path == ":memory:" or not is_damage(exc):
        return None
    return damage_message(Path(path), exc, home)


def is_damage(exc: BaseException | None) -> bool:
    """Whether an error (SQLAlchemy's or sqlite3's, or one they wrap) says the database file is broken."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, sqlite3.DatabaseError) and any(words in str(exc).lower() for words in _DAMAGE):
            return True
        exc = exc.__cause__ or getattr(exc, "orig", None) or exc.__context__
    return False


def damage_message(db_path: Path, exc: BaseException, home: Path | None = None) -> str:
    """The sentence to print: the file, SQLite's words, and the way back."""
    db_path = db_path.resolve()
    said = str(getattr(exc, "orig", None) or exc).splitlines()[0]
    text = [f"The run store {db_path} is damaged (SQLite: {said}); MedCoT Studio cannot read it."]
    aside = (f"stop the app and any worker, then move the damaged file aside: mv {db_path} {db_path}.damaged "
             f"(and its {db_path.name}-wal and {db_path.name}-shm files, if there are any)")
    if (backup := latest_backup(db_path, home)) is not None:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(backup.stat().st_mtime))
        text.append(f"The latest backup that reads is {backup} (saved {when}). To restore it, {aside}, then copy "
                    f"the backup in its place: cp {backup} {db_path}")
    else:
        text.append(f"No backup of it was found beside it. To start with an empty run store, {aside}; the next "
                    "start creates a new one (the runs' files under runs/ stay where they are). If you keep a "
                    f"backup of {db_path.name} elsewhere, copy it to {db_path} instead.")
    return "\n".join(text)


def latest_backup(db_path: Path, home: Path | None = None) -> Path | None:
    """The newest readable backup of ``db_path``, or None."""
    fields = {"name": db_path.name, "stem": db_path.stem, "suffix": db_path.suffix}
    found = {p for pattern in _BESIDE for p in db_path.parent.glob(pattern.format(**fields))}
    for folder in _FOLDERS:
        found.update((home or db_path.parent).joinpath(folder).rglob("*.db"))
    candidates = [p for p in found if p.is_file() and p.resolve() != db_path.resolve()
                  and not p.name.endswith((".damaged", "-wal", "-shm"))]
    for path in sorted(candidates, key=lambda p: p.stat().st_mtime, reverse=True):
        if _reads(path):
            return path
    return None


def _reads(path: Path) -> bool:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            return conn.execute("PRAGMA quick_check").fetchone() == ("ok",)
    except sqlite3.Error:
        return False
