"""scheduler jobs point at monitor.scheduling.scheduler (the module moved)

APScheduler keeps each job's function as an import path inside a pickled state in
``tidewatch_jobs`` (a table APScheduler creates itself, so it may be missing). The scheduler
moved from ``monitor.scheduler`` to ``monitor.scheduling.scheduler``; jobs stored before would
fail to load, so their paths are rewritten here, keeping their next run times.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 12:00:00
"""

from __future__ import annotations

import pickle

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

OLD, NEW = "monitor.scheduler:", "monitor.scheduling.scheduler:"


def _rewrite(old: str, new: str) -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("tidewatch_jobs"):
        return
    jobs = sa.table("tidewatch_jobs", sa.column("id", sa.String), sa.column("job_state"))
    for job_id, blob in bind.execute(sa.select(jobs.c.id, jobs.c.job_state)).all():
        # the rows are APScheduler's own pickles, written by this service's scheduler
        state = pickle.loads(blob)
        func = state.get("func")
        if isinstance(func, str) and func.startswith(old):
            state["func"] = new + func.removeprefix(old)
            bind.execute(
                jobs.update()
                .where(jobs.c.id == job_id)
                .values(job_state=pickle.dumps(state, pickle.HIGHEST_PROTOCOL))
            )


def upgrade() -> None:
    _rewrite(OLD, NEW)


def downgrade() -> None:
    _rewrite(NEW, OLD)
