"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temp folder, ``pg_ctl`` listening on a Unix socket
in that folder only (no TCP port to collide with), one fresh database per test.

PostgreSQL refuses to run as root, and CI runs as root: there the server runs as Debian's ``postgres`` system user
(the ``postgresql`` package creates it; ``make test`` installs the package with scripts/install-postgres.sh).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

INSTALL_HINT = "run `make test` (it installs Debian's postgresql) or scripts/install-postgres.sh"


def server_bin_dir() -> Path | None:
    """The folder holding initdb and pg_ctl: Debian keeps them off PATH, under /usr/lib/postgresql/VERSION/bin."""
    on_path = shutil.which("initdb")
    candidates = ([Path(on_path).resolve().parent] if on_path else []) + [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)]
    return next((d for d in candidates if (d / "initdb").exists() and (d / "pg_ctl").exists()), None)


def _version(path: str) -> float:
    try:
        return float(Path(path).parent.name)
    except ValueError:
        return 0.0


def missing_reason() -> str | None:
    """Why no server can be started here (None when one can): the tests skip with this reason."""
    if server_bin_dir() is None:
        return f"PostgreSQL server binaries (initdb, pg_ctl) are not installed: {INSTALL_HINT}"
    if os.geteuid() == 0 and not _has_user("postgres"):
        return f"running as root and there is no 'postgres' user for the server to run as: {INSTALL_HINT}"
    return None


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class PostgresServer:
    """One running server; :meth:`new_database` hands out an empty database's SQLAlchemy URL."""

    PORT = 5432  # only names the socket file inside our own folder: servers of parallel sessions never meet

    def __init__(self) -> None:
        self.bin = server_bin_dir()
        self.folder = Path(tempfile.mkdtemp(prefix="medcot-pg-"))  # short: a socket path has ~100 characters
        self.data = self.folder / "data"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._names = itertools.count(1)

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as_user, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            log = (self.folder / "server.log")
            raise RuntimeError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stdout}{proc.stderr}"
                               + (log.read_text(errors="replace")[-2000:] if log.exists() else ""))

    def start(self) -> "PostgresServer":
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        # fsync off: a test server's data is thrown away, durability would only slow the suite down.
        options = f"-k {self.folder} -p {self.PORT} -c listen_addresses='' -c fsync=off -c max_connections=200"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-o", options, "start")
        return self

    # The server trusts its socket's callers and never asks for it; it is there so tests can check that a
    # database password appears in no log.
    PASSWORD = "pg-canary-" + secrets.token_hex(6)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres:{self.PASSWORD}@/{database}?host={self.folder}&port={self.PORT}"

    def new_database(self) -> str:
        """An empty database of its own (the app migrates it on first use); returns its URL."""
        import psycopg

        name = f"medcot_test_{next(self._names)}"
        with psycopg.connect(host=str(self.folder), port=self.PORT, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)
