"""Evaluations: a queued job has a kind (train / evaluate); evaluations, their items and blind ratings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 03:33:30.902622
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('base_run_id', sa.Integer(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('n_items', sa.Integer(), nullable=False),
    sa.Column('max_new_tokens', sa.Integer(), nullable=False),
    sa.Column('greedy', sa.Boolean(), nullable=False),
    sa.Column('temperature', sa.Float(), nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['base_run_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['job_id'], ['runs.id'], ),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_job_id'), ['job_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_run_id'), ['run_id'], unique=False)

    op.create_table('eval_items',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('question', sa.Text(), nullable=False),
    sa.Column('options_json', sa.Text(), nullable=True),
    sa.Column('correct', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('reference_reasoning', sa.Text(), nullable=True),
    sa.Column('reference_answer', sa.Text(), nullable=True),
    sa.Column('a_side', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('base_text', sa.Text(), nullable=True),
    sa.Column('base_reasoning', sa.Text(), nullable=True),
    sa.Column('base_answer', sa.Text(), nullable=True),
    sa.Column('base_state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('base_tokens', sa.Integer(), nullable=True),
    sa.Column('base_finish', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('base_seconds', sa.Float(), nullable=True),
    sa.Column('base_choice', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tuned_text', sa.Text(), nullable=True),
    sa.Column('tuned_reasoning', sa.Text(), nullable=True),
    sa.Column('tuned_answer', sa.Text(), nullable=True),
    sa.Column('tuned_state', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tuned_tokens', sa.Integer(), nullable=True),
    sa.Column('tuned_finish', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tuned_seconds', sa.Float(), nullable=True),
    sa.Column('tuned_choice', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('evaluation_id', 'position', name='uq_eval_items_position')
    )
    op.create_table('eval_ratings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('evaluation_id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Integer(), nullable=False),
    sa.Column('rater', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('verdict', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('preferred', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], ),
    sa.ForeignKeyConstraint(['item_id'], ['eval_items.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('item_id', 'rater', name='uq_eval_ratings_rater')
    )
    with op.batch_alter_table('eval_ratings', schema=None) as batch_op:
        batch_op.create_index('ix_eval_ratings_evaluation', ['evaluation_id'], unique=False)

    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), server_default='train', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('eval_ratings', schema=None) as batch_op:
        batch_op.drop_index('ix_eval_ratings_evaluation')

    op.drop_table('eval_ratings')
    op.drop_table('eval_items')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_run_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_job_id'))

    op.drop_table('evaluations')
