"""What the browser can download of a local export, and how big it is (shown before anyone clicks: a merged 8 B
model is 16 GB).

A GGUF file is a whole model on its own, so each is offered by itself (with the model card); an adapter or a
merged model is only usable as its folder, so it is offered as one zip archive -- stored, not compressed, for the
merged model: safetensors weights barely shrink, and compressing 16 GB would take minutes. An archive is made
once per export and again only when the export changed.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from medcot_ui.units import human_size

AS_SINGLE_FILES = {"gguf"}
COMPRESSED = {"adapter"}  # small, mostly JSON and one small weights file


@dataclass(frozen=True)
class Download:
    path: Path
    size: int  # bytes


def offer_downloads(kind: str, folder: Path, archive_stem: str) -> list[Download]:
    """The downloads of the export of ``kind`` in ``folder``: its files (GGUF first), or one archive
    ``<archive_stem>.zip`` beside the folder."""
    if kind in AS_SINGLE_FILES:
        files = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: (p.suffix != ".gguf", p.name))
        return [Download(p, p.stat().st_size) for p in files]
    archive = archive_folder(folder, folder.parent / f"{archive_stem}.zip", compress=kind in COMPRESSED)
    return [Download(archive, archive.stat().st_size)]


def archive_folder(folder: Path, target: Path, compress: bool) -> Path:
    """``folder``'s files as a zip at ``target``, reused while no file in the folder is newer than it."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    newest = max((p.stat().st_mtime_ns for p in files), default=0)
    if target.exists() and target.stat().st_mtime_ns >= newest:
        return target
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # never a half-written archive
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED,
                             allowZip64=True) as z:
            for path in files:
                z.write(path, path.name)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def summary(downloads: list[Download]) -> str:
    """'**2 files, 1.3 GB in all**: `a.gguf` (900 MB), `README.md` (2.0 KB)' -- the sizes before the download."""
    total = sum(d.size for d in downloads)
    what = "1 archive" if len(downloads) == 1 and downloads[0].path.suffix == ".zip" else \
        f"{len(downloads)} file{'s' * (len(downloads) != 1)}"
    listed = ", ".join(f"`{d.path.name}` ({human_size(d.size)})" for d in downloads)
    return f"**{what}, {human_size(total)} in all**: {listed}"
