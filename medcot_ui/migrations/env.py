"""Alembic environment: migrations run on the connection :func:`medcot_ui.store.migrate` hands over, inside its
transaction (BEGIN IMMEDIATE on SQLite), so processes starting together migrate one after the other."""

from __future__ import annotations

from alembic import context
from sqlmodel import SQLModel

import medcot_ui.evaluate.tables  # noqa: F401 - registers the evaluation tables too
import medcot_ui.store  # noqa: F401 - registers the tables on SQLModel.metadata

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters most things by copying the table, which batch mode does for us.
context.configure(connection=connection, target_metadata=SQLModel.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
