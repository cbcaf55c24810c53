"""Evaluations record their contamination check (evaluations.contamination_json) and their scoring method
(evaluations.method: generate or loglik; rows from before are generated ones).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('contamination_json', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('method', sqlmodel.sql.sqltypes.AutoString(), nullable=False, server_default='generate'))


def downgrade() -> None:
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_column('method')
        batch_op.drop_column('contamination_json')
