"""Write the Alembic migration for a change to the tables in medcot_ui/store.py.

    make migration m="runs gain a notes column"

It migrates a scratch database to the current head, compares it with the models and writes
medcot_ui/migrations/versions/NNNN_<message>.py; read it before committing (Alembic cannot see renames).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402
from sqlalchemy import create_engine  # noqa: E402

from medcot_ui import store  # noqa: E402


def main(message: str) -> None:
    head = ScriptDirectory.from_config(store.alembic_config()).get_current_head()
    rev_id = f"{int(head or 0) + 1:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        with create_engine(f"sqlite:///{tmp}/scratch.db").connect() as conn, conn.begin():
            cfg = store.alembic_config(conn)
            command.upgrade(cfg, "head")
            command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].strip():
        sys.exit('usage: make migration m="what changed in the tables"')
    main(sys.argv[1])
