"""The scheduler process: periodic jobs next to gunicorn, never inside a worker.

It delivers the outbox (acknowledgments and BerichtVerwerk results) and removes expired
zaken. Every job is idempotent and reads its work from the database, so several nodes may
run it at once (outbox rows are claimed with SKIP LOCKED) and a restart loses nothing.
"""

from __future__ import annotations

import logging
import signal
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers.blocking import BlockingScheduler

from adapter.config import Config, load_config
from adapter.ebms.outbound import Deliverer, OutboundTls
from adapter.jobs.retention import purge_expired_zaken
from adapter.store.db import Database

log = logging.getLogger("adapter.jobs")


def build_scheduler(config: Config, database: Database) -> tuple[BlockingScheduler, Deliverer]:
    tls = config.tls
    deliverer = Deliverer(
        database, OutboundTls(tls.certificate, tls.private_key, tls.trust_anchors)
    )
    scheduler = BlockingScheduler(timezone=UTC)
    scheduler.add_job(
        lambda: deliverer.deliver_due(datetime.now(UTC)),
        "interval",
        seconds=config.ebms.outbox_poll_seconds,
        id="outbox",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        lambda: log.info(
            "retention: %d zaken removed",
            purge_expired_zaken(database, config.lopende_zaken.retention_days, date.today()),
        ),
        "interval",
        hours=6,
        id="retention",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    return scheduler, deliverer


def run_scheduler(config_file: Path) -> None:
    """Entry point of the scheduler process started by `dk-adapter serve`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = load_config(config_file)
    database = Database(config.database_url)
    scheduler, deliverer = build_scheduler(config, database)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started: outbox every %ss", config.ebms.outbox_poll_seconds)
    try:
        scheduler.start()
    finally:
        deliverer.close()
        database.dispose()


if __name__ == "__main__":
    run_scheduler(Path(sys.argv[1]))
