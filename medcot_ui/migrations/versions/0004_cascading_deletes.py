"""Deletes cascade: every row that belongs to a run (metrics, events, comparisons, publishes, evaluations with their
items and ratings) goes with it through ON DELETE CASCADE, and a job queued for a run (an evaluation job) records
it as runs.parent_id, so purging a run is one DELETE.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# SQLite keeps no names for the foreign keys the first release made: batch mode finds them by this convention.
CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}
# table -> (column, referred table) of each foreign key that cascades
KEYS = {
    "metrics": [("run_id", "runs")],
    "run_events": [("run_id", "runs")],
    "comparisons": [("run_id", "runs")],
    "publishes": [("run_id", "runs")],
    "evaluations": [("job_id", "runs"), ("run_id", "runs"), ("base_run_id", "runs")],
    "eval_items": [("evaluation_id", "evaluations")],
    "eval_ratings": [("evaluation_id", "evaluations"), ("item_id", "eval_items")],
}


def _set_ondelete(table: str, keys: list[tuple[str, str]], ondelete: str | None) -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    existing = {tuple(fk["constrained_columns"]): fk["name"] for fk in sa.inspect(bind).get_foreign_keys(table)}
    with op.batch_alter_table(table, naming_convention=CONVENTION if sqlite else None) as batch_op:
        for column, referred in keys:
            name = CONVENTION["fk"] % {"table_name": table, "column_0_name": column, "referred_table_name": referred}
            batch_op.drop_constraint(name if sqlite else existing[(column,)], type_="foreignkey")
            batch_op.create_foreign_key(name, referred, [column], ["id"], ondelete=ondelete)


def upgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('parent_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_runs_parent_id_runs', 'runs', ['parent_id'], ['id'], ondelete='CASCADE')
    op.execute("UPDATE runs SET parent_id = (SELECT e.run_id FROM evaluations e WHERE e.job_id = runs.id) "
               "WHERE kind = 'evaluate'")
    for table, keys in KEYS.items():
        _set_ondelete(table, keys, "CASCADE")


def downgrade() -> None:
    for table, keys in reversed(KEYS.items()):
        _set_ondelete(table, keys, None)
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_constraint('fk_runs_parent_id_runs', type_='foreignkey')
        batch_op.drop_column('parent_id')
