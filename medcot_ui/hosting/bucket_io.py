"""Writing to a bucket mount the only way it keeps its promises: whole files, new names, written once.

No rename, no overwrite, no lock: each file is created under a name no other writer uses (time + process +
random), written in full, flushed and closed (a bucket mount uploads on close). Readers decide what is complete
from the manifests written after the data, never from the data files themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from pathlib import Path

CHUNK = 4 * 2**20


def new_tag(now: float | None = None) -> str:
    """A name part that sorts by time (UTC, to the millisecond) and is unique across processes and machines."""
    now = time.time() if now is None else now
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f"{int(now * 1000) % 1000:03d}Z"
    return f"{stamp}-{os.getpid()}-{secrets.token_hex(3)}"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_whole(source: Path, target: Path, overwrite: bool = False) -> tuple[str, int]:
    """Copy one file in full; returns (SHA-256 of what was written, bytes). Refuses an existing target unless
    ``overwrite`` (restoring onto local disk): on the mount a name is written once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(target, "wb" if overwrite else "xb") as dst:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def write_json_once(path: Path, data: dict) -> None:
    """A manifest: a new file, whole, flushed; a reader finds it complete or not parseable, never half-true."""
    with open(path, "x", encoding="utf-8") as fh:
        fh.write(json.dumps(data, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
