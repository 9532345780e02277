"""approvals timed changes team policy

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:44:53.033896
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("change_id", sa.Integer(), nullable=False),
        sa.Column("approver_id", sa.String(length=32), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["change_id"], ["changes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("change_id", "approver_id", name="uq_approvals_approver"),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_change_id"), ["change_id"], unique=False)

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("approvals_needed", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_channel", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("request_ts", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("duration_seconds", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("revert_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("reverts_change_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_changes_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_changes_revert_at"), ["revert_at"], unique=False)
        batch_op.create_foreign_key(
            "fk_changes_reverts_change_id",
            "changes",
            ["reverts_change_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("trail_enabled", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("self_approval", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("approval_buttons", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approval_over_agents", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("two_approvers_buttons", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("approval_ttl_minutes", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teams", schema=None) as batch_op:
        batch_op.drop_column("approval_ttl_minutes")
        batch_op.drop_column("two_approvers_buttons")
        batch_op.drop_column("approval_over_agents")
        batch_op.drop_column("approval_buttons")
        batch_op.drop_column("self_approval")
        batch_op.drop_column("trail_enabled")

    with op.batch_alter_table("changes", schema=None) as batch_op:
        batch_op.drop_constraint("fk_changes_reverts_change_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_changes_revert_at"))
        batch_op.drop_index(batch_op.f("ix_changes_expires_at"))
        batch_op.drop_column("reverts_change_id")
        batch_op.drop_column("revert_at")
        batch_op.drop_column("duration_seconds")
        batch_op.drop_column("request_ts")
        batch_op.drop_column("request_channel")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("approvals_needed")
        batch_op.drop_column("reason")

    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_change_id"))

    op.drop_table("approvals")
