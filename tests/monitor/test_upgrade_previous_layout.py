"""A database written by the previous release (the flat ``monitor/`` layout, migrations up to
0005) upgrades cleanly and reads back: models, runs, statuses, and the scheduler's stored jobs,
whose import paths moved with the scheduler.

The file was made by ``tidewatch demo --records 400`` at commit 37c61c8, before the move.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from sqlalchemy import func, select

from monitor.db.engine import make_engine, make_sessionmaker
from monitor.db.migrate import current_revision, head_revision, upgrade
from monitor.db.models import list_models
from monitor.db.tables import DetectionResult, DetectionRun
from monitor.runs.status import model_statuses
from monitor.scheduling import scheduler
from monitor.vocabulary import ModelStatus, RunStatus

FIXTURE = Path(__file__).parent / "data" / "layout_0_1_db_0005.sqlite.gz"


def test_previous_release_database_upgrades_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with gzip.open(FIXTURE) as packed, path.open("wb") as out:
        shutil.copyfileobj(packed, out)
    engine = make_engine(f"sqlite:///{path}")
    assert current_revision(engine) == "0005"

    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with make_sessionmaker(engine)() as session:
        (model,) = list_models(session)
        assert model.spec.name == "plankton-demo"
        runs = session.scalars(select(DetectionRun).order_by(DetectionRun.id)).all()
        assert [RunStatus(r.status) for r in runs] == [RunStatus.DRIFT, RunStatus.OK]
        assert session.scalar(select(func.count()).select_from(DetectionResult)) == 11
        (status,) = model_statuses(session)
        assert status.status in set(ModelStatus)

    store = SQLAlchemyJobStore(engine=engine, tablename="tidewatch_jobs")
    store.start(None, "default")  # type: ignore[arg-type]
    jobs = store.get_all_jobs()  # unloadable jobs would be logged and dropped here
    assert {job.id for job in jobs} == {
        "tidewatch:deliver",
        "tidewatch:telemetry-rules",
        "tidewatch:alertmanager-refresh",
    }
    for job in jobs:
        assert job.func is getattr(scheduler, job.func_ref.split(":")[1])
        assert job.func_ref.startswith("monitor.scheduling.scheduler:")
