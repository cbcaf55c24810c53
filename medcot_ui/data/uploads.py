"""Uploaded data files: our own size and row limits, and a stable content-addressed copy.

An accepted upload is copied into ``uploads_dir`` under its content hash, so a run config's ``data.file_path``
points at a file that never changes underneath it. A rejected upload leaves nothing behind: the temporary file
the web server wrote is deleted too, and nothing reaches ``uploads_dir``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medcot_ui.data.columns import columns_of
from medcot_ui.data.load import FILE_TYPES, file_sha256, read_file
from medcot_ui.errors import DataError, SettingsError
from medcot_ui.hosting.bucket_files import keep_quietly
from medcot_ui.settings import get_settings
from medcot_ui.units import human_size

DEFAULT_MAX_ROWS = 100_000


class UploadRejected(DataError):
    """The upload broke a limit or could not be read; nothing of it was kept."""


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_rows: int

    @classmethod
    def from_env(cls) -> "UploadLimits":
        """``MEDCOT_UPLOAD_MAX_MB`` (default 200; the same setting caps Gradio's own upload size) and
        ``MEDCOT_UPLOAD_MAX_ROWS`` (default 100000)."""
        try:
            rows = int(os.environ.get("MEDCOT_UPLOAD_MAX_ROWS") or DEFAULT_MAX_ROWS)
        except ValueError:
            raise SettingsError("MEDCOT_UPLOAD_MAX_ROWS must be a whole number") from None
        return cls(int(get_settings().max_upload_mb * 2**20), rows)

    def describe(self) -> str:
        return f"up to {human_size(self.max_bytes)} and {self.max_rows:,} rows"


@dataclass(frozen=True)
class AcceptedUpload:
    path: Path  # the stored copy: what data.file_path should name
    original_name: str
    rows: int
    columns: list[str]



def _discard(path: Path) -> None:
    """Remove the server's temporary copy (and its folder, when that held only this file)."""
    path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass


def accept_upload(path: str | Path, original_name: str | None = None,
                  limits: UploadLimits | None = None) -> AcceptedUpload:
    """Check an uploaded file against our limits and its format; keep a content-addressed copy.

    Limits: ``UploadLimits.from_env()`` unless given. Raises UploadRejected (naming the file, and the line where
    the format breaks) after deleting the upload.
    """
    path = Path(path)
    name = original_name or path.name
    limits = limits or UploadLimits.from_env()
    try:
        size = path.stat().st_size
        if size > limits.max_bytes:  # checked before reading a byte of it
            raise UploadRejected(f"{name}: {human_size(size)} is over the upload limit of "
                                 f"{human_size(limits.max_bytes)} (MEDCOT_UPLOAD_MAX_MB)")
        records = read_file(path, name, limits.max_rows, limits.max_bytes)
        if not records:
            raise UploadRejected(f"{name}: the file has no rows")
        if len(records) > limits.max_rows:
            raise UploadRejected(f"{name}: {len(records):,} rows is over the limit of {limits.max_rows:,} rows "
                                 "(MEDCOT_UPLOAD_MAX_ROWS); upload a smaller slice")
    except DataError as exc:
        _discard(path)
        raise exc if isinstance(exc, UploadRejected) else UploadRejected(str(exc)) from None
    except BaseException:
        _discard(path)
        raise
    target = _store(path, Path(name).suffix.lower())
    return AcceptedUpload(target, name, len(records), columns_of(records))


def is_stored_upload(path: str | Path) -> bool:
    """Is ``path`` a file this app stored from an upload? (A path sent by a browser must not name any other.)"""
    folder = get_settings().uploads_dir.resolve()
    resolved = Path(path).resolve()
    # Half-written uploads are dot-files; anything else in the folder is not data.
    return (resolved.parent == folder and resolved.suffix in FILE_TYPES and not resolved.name.startswith(".")
            and resolved.is_file())


def data_file_problems(data: Any) -> list[str]:
    """On a shared server a browser may train only on files it uploaded: any other path would let a caller read
    the server's files through training and Compare. Locally (one person, their own machine) any path is fine."""
    if data.source != "file" or get_settings().auth_mode == "local" or is_stored_upload(data.file_path):
        return []
    return ["data.file_path: on a shared server only files uploaded in the Dataset tab can be trained on"]


def _store(path: Path, suffix: str) -> Path:
    folder = get_settings().uploads_dir
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{file_sha256(path)[:20]}{suffix}"
    if not target.exists():
        # Copy then rename: a half-written file never carries the final name, and equal content shares one file.
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".incoming-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
        keep_quietly(target)  # runs train on it after a restart too: to the bucket, where one is mounted
    return target
