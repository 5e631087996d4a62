"""The scheduler process: periodic jobs and the admin listener, next to gunicorn.

It delivers the outbox (acknowledgments and BerichtVerwerk results), removes expired zaken
and, daily, ebMS messages past their CPA's PersistDuration plus `ebms.purge_margin_days`.
Every job is idempotent and reads its work from the database, so a restart loses nothing.
Every node delivers the outbox (its rows are claimed one by one with SKIP LOCKED); the
periodic jobs (retention, purges, notifications, session clean-up) run only in the scheduler
that holds the job lock (adapter.store.locks), one node at a time. The others try to take it
every few seconds and, once they have it, run those jobs at once.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler

from adapter.admin import CrlStatus, Heartbeat, start_admin
from adapter.config import Config, load_config
from adapter.ebms.cpa import CpaStore
from adapter.ebms.outbound import Deliverer, OutboundTls
from adapter.jobs.crl import schedule_crl_refresh
from adapter.jobs.notifications import NotificationJob, expire_citizen_sessions
from adapter.jobs.retention import purge_expired_zaken, purge_messages, purge_wus_messages
from adapter.logs import configure_logging
from adapter.store.blobs import open_blob_store
from adapter.store.db import Database
from adapter.store.engine import is_database_file
from adapter.store.locks import JobLock, job_lock
from adapter.wiring import signer_trust

log = logging.getLogger("adapter.jobs")

# SQLite: how often the WAL is copied into the database file outside the write lock (a commit
# that must do it holds up every writer; see adapter.store.engine.WAL_AUTOCHECKPOINT_PAGES).
WAL_CHECKPOINT_SECONDS = 1.0


class RunLinesAtDebug(logging.Filter):
    """APScheduler's executor says "Running job …" and "… executed successfully" at INFO
    for every run: with the outbox polled every few seconds they drown every other line.
    They become DEBUG lines, shown only when `logging.level` is DEBUG; a job's failure
    (logged at ERROR) is left as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_run_lines() -> None:
    """Install `RunLinesAtDebug` on APScheduler's executor logger (once)."""
    executor_log = logging.getLogger("apscheduler.executors.default")
    if not any(isinstance(f, RunLinesAtDebug) for f in executor_log.filters):
        executor_log.addFilter(RunLinesAtDebug())


# How often a scheduler without the job lock tries to take it: how long the periodic jobs
# may pause after the node that ran them died.
LOCK_RETRY_SECONDS = 5
PERIODIC_JOBS = ("retention", "message-purge", "notifications", "citizen-sessions")


class JobLeader:
    """Whether this scheduler runs the periodic jobs: it does while it holds the job lock."""

    def __init__(self, lock: JobLock, on_taken: Callable[[], None]) -> None:
        self.lock = lock
        self.on_taken = on_taken
        self.held = False
        self._mutex = threading.Lock()

    def check(self) -> bool:
        """Try to hold the lock (it is kept once taken); log and react when that changed."""
        with self._mutex:
            held = self.lock.acquire()
            taken, lost = held and not self.held, self.held and not held
            self.held = held
        if taken:
            log.info("job lock taken: this node runs the periodic jobs")
            self.on_taken()
        elif lost:
            log.warning("job lock lost: another node may run the periodic jobs now")
        return held

    def only_when_held(self, job: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            if self.check():
                job()

        return run


def build_scheduler(
    config: Config, database: Database, heartbeat: Heartbeat
) -> tuple[BlockingScheduler, Deliverer]:
    tls = config.tls
    deliverer = Deliverer(
        database,
        OutboundTls(tls.certificate, tls.private_key, tls.trust_anchors),
        # Signed Acknowledgments (ebMS -s/-e) are checked against the CPA and the signer trust.
        cpas=CpaStore.load(config.ebms.cpa_dir),
        signers=signer_trust(config),
    )
    scheduler = BlockingScheduler(timezone=UTC)

    def run_periodic_jobs_now() -> None:
        for job_id in PERIODIC_JOBS:
            scheduler.modify_job(job_id, next_run_time=datetime.now(UTC))

    leader = JobLeader(
        job_lock(database.engine, f"dk-adapter jobs {socket.gethostname()}:{os.getpid()}"),
        run_periodic_jobs_now,
    )

    def deliver_outbox() -> None:
        deliverer.deliver_due()
        heartbeat.beat()

    blobs = open_blob_store(config.blobs)

    def retention() -> None:
        removed = purge_expired_zaken(database, config.lopende_zaken.retention_days, date.today())
        log.info("retention: %d zaken removed", removed)
        unfinished = blobs.remove_unfinished()
        if unfinished:
            log.warning("retention: %d unfinished attachment writes removed", unfinished)

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
        forgotten = purge_wus_messages(
            database, config.limits.replay_window_hours, datetime.now(UTC)
        )
        log.info("message purge: %d WS-A MessageIDs past the replay window forgotten", forgotten)

    scheduler.add_job(
        deliver_outbox,
        "interval",
        seconds=config.ebms.outbox_poll_seconds,
        id="outbox",
        max_instances=1,
        coalesce=True,
    )
    if is_database_file(database.url):  # SQLite: its WAL is checkpointed here
        scheduler.add_job(
            database.checkpoint,
            "interval",
            seconds=WAL_CHECKPOINT_SECONDS,
            id="wal-checkpoint",
            max_instances=1,
            coalesce=True,
        )
    scheduler.add_job(
        leader.only_when_held(retention),
        "interval",
        hours=6,
        id="retention",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        leader.only_when_held(message_purge),
        "interval",
        days=1,
        id="message-purge",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        leader.only_when_held(NotificationJob(database, config).run),
        "interval",
        seconds=config.notifications.interval_seconds,
        id="notifications",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        leader.only_when_held(lambda: expire_citizen_sessions(database, config, datetime.now(UTC))),
        "interval",
        minutes=5,
        id="citizen-sessions",
        max_instances=1,
        coalesce=True,
    )
    scheduler.add_job(
        leader.check,
        "interval",
        seconds=LOCK_RETRY_SECONDS,
        id="job-lock",
        max_instances=1,
        coalesce=True,
        # At once: taking the lock starts the periodic jobs (on_taken), on the node that has it.
        next_run_time=datetime.now(UTC),
    )
    return scheduler, deliverer


def run_scheduler(config_file: Path) -> None:
    """Entry point of the scheduler process started by `dk-adapter serve`."""
    config = load_config(config_file)
    configure_logging(config.logging)
    quiet_run_lines()
    database = Database(config.database_url)
    # Ready only while outbox rounds keep coming: a stuck job shows after a few missed rounds.
    heartbeat = Heartbeat(max_age_seconds=max(10 * config.ebms.outbox_poll_seconds, 30))
    scheduler, deliverer = build_scheduler(config, database, heartbeat)
    crl_status = CrlStatus()  # what the CRL refresh found wrong, for /ready
    schedule_crl_refresh(scheduler, config.tls, crl_status)
    admin = start_admin(config, database, heartbeat, crl_status)

    stopping = threading.Event()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        # Only this, in the handler: the signal may land while the main thread is inside the
        # scheduler submitting a job, holding its executor's locks, which the scheduler's
        # shutdown takes too; called here it waited for the main thread itself, forever.
        stopping.set()

    def shut_down_when_asked() -> None:
        stopping.wait()
        while True:
            try:
                scheduler.shutdown(wait=False)
                return
            except SchedulerNotRunningError:  # asked before it started
                time.sleep(0.05)

    threading.Thread(target=shut_down_when_asked, name="stop", daemon=True).start()
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
