"""The scheduler process: periodic jobs and the admin listener, next to gunicorn.

It delivers the outbox (acknowledgments and BerichtVerwerk results), removes expired zaken
and, daily, ebMS messages past their CPA's PersistDuration plus `ebms.purge_margin_days`.
Every job is idempotent and reads its work from the database, so several nodes may
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

from adapter.admin import Heartbeat, start_admin
from adapter.config import Config, load_config
from adapter.ebms.cpa import CpaStore
from adapter.ebms.outbound import Deliverer, OutboundTls
from adapter.jobs.notifications import NotificationJob, expire_citizen_sessions
from adapter.jobs.retention import purge_expired_zaken, purge_messages
from adapter.logs import configure_logging
from adapter.store.db import Database

log = logging.getLogger("adapter.jobs")


def build_scheduler(
    config: Config, database: Database, heartbeat: Heartbeat
) -> tuple[BlockingScheduler, Deliverer]:
    tls = config.tls
    deliverer = Deliverer(
        database, OutboundTls(tls.certificate, tls.private_key, tls.trust_anchors)
    )
    scheduler = BlockingScheduler(timezone=UTC)

    def deliver_outbox() -> None:
        deliverer.deliver_due(datetime.now(UTC))
        heartbeat.beat()

    def retention() -> None:
        removed = purge_expired_zaken(database, config.lopende_zaken.retention_days, date.today())
        log.info("retention: %d zaken removed", removed)

    cpas = list(CpaStore.load(config.ebms.cpa_dir))

    def message_purge() -> None:
        received, sent = purge_messages(
            database,
            cpas,
            config.receipts.receiver_oin,
            config.ebms.purge_margin_days,
            datetime.now(UTC),
        )
        log.info("message purge: %d received and %d sent messages removed", received, sent)

    scheduler.add_job(
        deliver_outbox,
        "interval",
        seconds=config.ebms.outbox_poll_seconds,
        id="outbox",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        retention,
        "interval",
        hours=6,
        id="retention",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        message_purge,
        "interval",
        days=1,
        id="message-purge",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        NotificationJob(database, config).run,
        "interval",
        seconds=config.notifications.interval_seconds,
        id="notifications",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
    scheduler.add_job(
        lambda: expire_citizen_sessions(database, config, datetime.now(UTC)),
        "interval",
        minutes=5,
        id="citizen-sessions",
        max_instances=1,
        coalesce=True,
    )
    return scheduler, deliverer


def run_scheduler(config_file: Path) -> None:
    """Entry point of the scheduler process started by `dk-adapter serve`."""
    config = load_config(config_file)
    configure_logging(config.logging)
    database = Database(config.database_url)
    # Ready only while outbox rounds keep coming: a stuck job shows after a few missed rounds.
    heartbeat = Heartbeat(max_age_seconds=max(10 * config.ebms.outbox_poll_seconds, 30))
    scheduler, deliverer = build_scheduler(config, database, heartbeat)
    admin = start_admin(config, database, heartbeat)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("scheduler started: outbox every %ss", config.ebms.outbox_poll_seconds)
    try:
        scheduler.start()
    finally:
        admin.shutdown()
        deliverer.close()
        database.dispose()


if __name__ == "__main__":
    run_scheduler(Path(sys.argv[1]))
