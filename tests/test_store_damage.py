"""A damaged runs.db: `medcot list` and the app's start name the file, say it is damaged and point to the latest
backup that reads (or say how to move the file aside), never a SQLAlchemy traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, child_env, cli


def _damage_pages(db: Path) -> None:
    """Keep SQLite's header, overwrite the pages after it: what a disk error or a half-copied file leaves."""
    data = bytearray(db.read_bytes())
    data[4096:] = b"\xde\xad" * ((len(data) - 4096) // 2)
    db.write_bytes(bytes(data))


def test_medcot_list_on_a_file_that_is_not_a_database_names_it_and_says_how_to_move_it_aside(home: Path) -> None:
    db = home / "runs.db"
    db.write_bytes(b"these are not the rows you are looking for\n" * 200)
    out = cli("list", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert f"The run store {db} is damaged (SQLite: file is not a database)" in out.stderr
    assert "No backup of it was found" in out.stderr and f"mv {db} {db}.damaged" in out.stderr


def test_a_damaged_runs_db_points_to_the_latest_backup_that_reads_in_medcot_list_and_at_the_app_start(
        home: Path) -> None:
    db = home / "runs.db"
    cli("list")  # creates the store
    older, newer = home / "runs.db.bak", home / "backups" / "runs-2026-12-01.db"
    shutil.copy2(db, older)
    newer.parent.mkdir()
    newer.write_bytes(b"a backup that was itself cut short")  # newer, but unreadable: not offered
    _damage_pages(db)
    out = cli("list", check=False)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert f"The run store {db} is damaged" in out.stderr
    assert f"The latest backup that reads is {older}" in out.stderr and f"cp {older} {db}" in out.stderr
    start = subprocess.run([sys.executable, "app.py", "--no-worker"], cwd=ROOT, env=child_env(), timeout=120,
                           capture_output=True, text=True)
    assert start.returncode != 0 and "Traceback" not in start.stderr, start.stderr
    assert "MedCoT Studio cannot start:" in start.stderr and f"{db} is damaged" in start.stderr
    assert f"The latest backup that reads is {older}" in start.stderr
