"""SQLite snapshots on a bucket mount: whole files written once; the newest one that verifies is the latest.

A Storage Bucket mount is no POSIX disk: no locking, no atomic rename, writes uploaded on close, reads possibly
stale. So nothing there is ever overwritten or renamed. A snapshot is taken with SQLite's online backup API into
a local temporary file (consistent while the app writes), checked with ``PRAGMA integrity_check``, copied to a
new ``runs-<time>-<tag>.db`` on the mount, and only then recorded by its own manifest ``runs-<time>-<tag>.json``
(size, SHA-256, the app's restart notes). A snapshot whose manifest is missing, torn or does not match its file
is ignored, so a process killed at any point leaves the previous snapshot the latest.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from medcot_ui.hosting.bucket_io import copy_whole, new_tag, sha256_of, write_json_once
from medcot_ui.errors import MedcotError
from medcot_ui.settings import Settings

SNAPSHOT_FOLDER = Path("medcot") / "snapshots"
KEEP = 3  # verified snapshots kept on the mount; older ones are removed once a newer one is recorded
STATUS_FILE = "snapshot-status.json"  # on local disk, beside the database: what the banner shows
# A database file with no manifest is a copy in progress (another process) or a torn one (killed): left alone
# until it is this old.
ORPHAN_AGE_S = 3600.0


class SnapshotError(MedcotError):
    """A snapshot that could not be taken or read back (the message names the file)."""


@dataclass(frozen=True)
class Snapshot:
    manifest: Path
    database: Path
    sha256: str
    size: int
    written_at: float
    app_state: dict


def snapshot_dir(bucket: Path) -> Path:
    return bucket / SNAPSHOT_FOLDER


def _backup_to(db_path: Path, target: Path) -> None:
    """SQLite's online backup in one step (readers never block writers in WAL mode), then checked."""
    source = sqlite3.connect(db_path, timeout=30)  # read only in effect; a read-only open needs the -shm file
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)
        copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file: no -wal beside it on the mount
        result = copy.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        source.close()
        copy.close()
    if result != "ok":
        raise SnapshotError(f"the backup of {db_path} failed its integrity check: {result}")


def _remove_stale_local_copies(folder: Path) -> None:
    """Local backups of a process killed mid-snapshot (its temporary folder outlives a SIGKILL)."""
    for path in folder.glob(".snapshot-*"):
        try:
            if time.time() - path.stat().st_mtime > ORPHAN_AGE_S:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def take(db_path: Path, bucket: Path, app_state: dict | None = None) -> Snapshot:
    """Write a new snapshot of ``db_path`` to the mount and record it; returns it."""
    if not db_path.exists():
        raise SnapshotError(f"no database at {db_path} to snapshot")
    folder = snapshot_dir(bucket)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_local_copies(db_path.parent)
    name = f"runs-{new_tag()}"
    with tempfile.TemporaryDirectory(dir=db_path.parent, prefix=".snapshot-") as tmp:  # local disk
        local = Path(tmp) / "runs.db"
        _backup_to(db_path, local)
        digest, size = copy_whole(local, folder / f"{name}.db")
    written_at = time.time()
    manifest = folder / f"{name}.json"
    write_json_once(manifest, {"database": f"{name}.db", "sha256": digest, "bytes": size,
                               "written_at": written_at, "app_state": app_state or {}})
    prune(bucket)
    return Snapshot(manifest, folder / f"{name}.db", digest, size, written_at, app_state or {})


def _read_manifest(path: Path) -> Snapshot | None:
    """The snapshot a manifest records, if the manifest is whole and its database has the recorded size."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        snapshot = Snapshot(path, path.parent / data["database"], data["sha256"], int(data["bytes"]),
                            float(data["written_at"]), dict(data.get("app_state") or {}))
        if snapshot.database.stat().st_size != snapshot.size:
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return snapshot


def recorded(bucket: Path) -> list[Snapshot]:
    """Every snapshot whose manifest is whole and whose file has its size, newest first (checksums unread)."""
    names = sorted(snapshot_dir(bucket).glob("runs-*.json"), reverse=True)  # the names sort by time
    return [s for path in names if (s := _read_manifest(path)) is not None]


def latest(bucket: Path) -> Snapshot | None:
    """The newest snapshot whose file matches its checksum."""
    for snapshot in recorded(bucket):
        try:
            if sha256_of(snapshot.database) == snapshot.sha256:
                return snapshot
        except OSError:
            continue
    return None


def prune(bucket: Path, keep: int = KEEP) -> None:
    """Remove every snapshot older than the ``keep`` newest recorded ones (so the newest good copy is never
    removed), torn ones included, and database files that never got a manifest once they are old."""
    good = recorded(bucket)
    if len(good) < keep:
        return
    oldest_kept = good[keep - 1].manifest.name
    for manifest in snapshot_dir(bucket).glob("runs-*.json"):
        if manifest.name < oldest_kept:  # the names sort by time
            manifest.unlink(missing_ok=True)  # the record first: a kill here leaves an orphan, never a lie
            manifest.with_suffix(".db").unlink(missing_ok=True)
    now = time.time()
    for path in snapshot_dir(bucket).glob("runs-*.db"):
        try:
            orphan = not path.with_suffix(".json").exists() and now - path.stat().st_mtime > ORPHAN_AGE_S
        except OSError:
            continue
        if orphan:
            path.unlink(missing_ok=True)


def restore(db_path: Path, bucket: Path) -> Snapshot | None:
    """With no local database, put the latest verified snapshot in its place; None when there was nothing to do."""
    if db_path.exists():
        return None
    snapshot = latest(bucket)
    if snapshot is None:
        return None
    db_path.parent.mkdir(parents=True, exist_ok=True)
    partial = db_path.with_name(db_path.name + ".restoring")
    digest, _ = copy_whole(snapshot.database, partial, overwrite=True)
    check = sqlite3.connect(partial)
    try:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        check.close()
    if digest != snapshot.sha256 or result != "ok":
        partial.unlink(missing_ok=True)
        raise SnapshotError(f"{snapshot.database} changed while it was restored ({result}); start again")
    os.replace(partial, db_path)  # local disk: the rename is atomic, so a half-restored database never exists
    return snapshot


# ---- what the banner shows: the last snapshot this machine wrote ----------------------------------------------

def status_path(settings: Settings) -> Path:
    return settings.home / STATUS_FILE


def record_status(settings: Settings, snapshot: Snapshot | None, error: str | None = None) -> None:
    """Note the outcome of a snapshot on local disk (tmp + rename is safe there); the last success is kept."""
    path = status_path(settings)
    state = read_status(settings)
    if snapshot is not None:
        state.update(written_at=snapshot.written_at, name=snapshot.database.name, bytes=snapshot.size)
    state["error"] = error
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(state), encoding="utf-8")
    os.replace(tmp, path)


def read_status(settings: Settings) -> dict:
    try:
        return json.loads(status_path(settings).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

