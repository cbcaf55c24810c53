"""Finished files kept on the bucket mount: checkpoints at each save, adapters, exports and evaluation exports
when final; put back on a fresh start.

Each copy goes to its own new folder ``medcot/files/<tag>/`` and is recorded afterwards by a manifest in
``medcot/manifests/`` (the data directory's relative path of every file, its size and SHA-256). A copy is kept
per *group*: a run's checkpoints form one group (the newest verified one is enough to resume), anything else is
its own group; older copies of a group are removed only after a newer one is recorded.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from medcot_ui.hosting.bucket_io import copy_whole, new_tag, sha256_of, write_json_once
from medcot_ui.settings import Settings, get_settings

FILES_FOLDER = Path("medcot") / "files"
MANIFEST_FOLDER = Path("medcot") / "manifests"


@dataclass(frozen=True)
class Copy:
    manifest: Path
    folder: Path
    group: str
    files: dict[str, tuple[int, str]]  # relative path in the data directory -> (bytes, sha256)
    written_at: float


def keep(home: Path, bucket: Path, files: Iterable[Path], group: str) -> Copy:
    """Copy ``files`` (inside ``home``) to the mount as one recorded copy of ``group``; older copies go."""
    tag = new_tag()
    folder = bucket / FILES_FOLDER / tag
    recorded: dict[str, tuple[int, str]] = {}
    for path in sorted(files):
        rel = path.relative_to(home).as_posix()
        digest, size = copy_whole(path, folder / rel)
        recorded[rel] = (size, digest)
    written_at = time.time()
    manifest = bucket / MANIFEST_FOLDER / f"{tag}.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    write_json_once(manifest, {"group": group, "folder": tag, "written_at": written_at,
                               "files": {rel: list(v) for rel, v in recorded.items()}})
    copy = Copy(manifest, folder, group, recorded, written_at)
    for old in copies(bucket):
        if old.group == group and old.written_at < written_at:
            _remove(old)
    return copy


def _remove(copy: Copy) -> None:
    copy.manifest.unlink(missing_ok=True)  # the record first: a kill here leaves files, never a false record
    shutil.rmtree(copy.folder, ignore_errors=True)


def copies(bucket: Path) -> list[Copy]:
    """Every recorded copy whose manifest is whole, newest first (checksums unread)."""
    found = []
    for path in sorted((bucket / MANIFEST_FOLDER).glob("*.json"), reverse=True):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            files = {rel: (int(v[0]), str(v[1])) for rel, v in data["files"].items()}
            found.append(Copy(path, bucket / FILES_FOLDER / data["folder"], data["group"], files,
                              float(data["written_at"])))
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            continue
    return found


def forget_runs(run_ids: list[int], settings: Settings | None = None) -> int:
    """Remove the bucket's copies of runs removed for good (their folders and local exports): a restore must not
    bring them back."""
    settings = settings or get_settings()
    return forget_quietly([folder for run_id in run_ids for folder in (settings.runs_dir / f"run-{run_id}",
                                                                       settings.run_exports_dir(run_id))], settings)


def forget_quietly(folders: list[Path], settings: Settings | None = None) -> int:
    """Remove the bucket's copies of everything under ``folders`` (a run removed for good); returns how many."""
    settings = settings or get_settings()
    if settings.storage_mode != "bucket" or not settings.bucket_dir.is_dir():
        return 0
    prefixes = [f"{folder.resolve().relative_to(settings.home).as_posix()}/" for folder in folders
                if settings.home in folder.resolve().parents]
    try:
        gone = [c for c in copies(settings.bucket_dir) if any(f"{c.group}/".startswith(p) for p in prefixes)]
        for copy in gone:
            _remove(copy)
    except OSError as exc:
        print(f"[bucket] could not remove old copies from {settings.bucket_dir}: {exc}", flush=True)
        return 0
    return len(gone)


def verifies(copy: Copy) -> bool:
    try:
        return all((copy.folder / rel).stat().st_size == size and sha256_of(copy.folder / rel) == digest
                   for rel, (size, digest) in copy.files.items())
    except OSError:
        return False


def restore(home: Path, bucket: Path) -> list[str]:
    """Put back the newest verified copy of every group (files already on local disk are left alone); returns
    the groups restored."""
    restored: list[str] = []
    for copy in copies(bucket):
        if copy.group in restored or not verifies(copy):
            continue
        for rel in copy.files:
            target = home / rel
            if not target.exists():
                copy_whole(copy.folder / rel, target, overwrite=True)
        restored.append(copy.group)
    return restored


def checkpoint_group(home: Path, run_dir: Path) -> str:
    return f"{run_dir.relative_to(home).as_posix()}/checkpoints"


def files_under(path: Path, skip_prefix: str | None = None) -> list[Path]:
    """A file, or every file in a folder (top-level entries starting with ``skip_prefix`` left out)."""
    if path.is_file():
        return [path]
    return [p for p in path.rglob("*") if p.is_file()
            and not (skip_prefix and p.relative_to(path).parts[0].startswith(skip_prefix))]


def keep_quietly(path: Path, group: str | None = None, skip_prefix: str | None = None,
                 settings: Settings | None = None) -> Copy | None:
    """Keep ``path`` on the mount when bucket storage is on; a copy that fails is reported, never raised: the
    work that made the file must not fail for it (the next copy or snapshot tries again)."""
    settings = settings or get_settings()
    path = path.resolve()
    if settings.storage_mode != "bucket" or not path.exists() or settings.home not in path.parents:
        return None  # a file saved elsewhere (e.g. an export to a path the user chose) is theirs to keep
    try:
        group = group or path.relative_to(settings.home).as_posix()
        return keep(settings.home, settings.bucket_dir, files_under(path, skip_prefix), group)
    except OSError as exc:
        print(f"[bucket] could not copy {path} to {settings.bucket_dir}: {exc}", flush=True)
        return None
