"""Log configuration: plain text for people, or one JSON object per line for log shippers.

Messages carry a request id (the RequestID of the receipt) where there is one, never a
full BSN and never message content.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from adapter.config import LoggingConfig


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        request_id = getattr(record, "request_id", None)
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(config: LoggingConfig) -> None:
    # Record fields no format here shows, which every record would otherwise look up: the
    # caller's file and line (a walk up the stack), the thread and the multiprocessing name.
    # Each request logs a line, and these were a fifth of its cost. The process id stays.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler()
    if config.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.level)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached" is the intended overlap guard.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def masked_bsn(bsn: str) -> str:
    """A BSN as logs may show it, `999993653` as `******653` (SPEC Part D): enough to help a
    citizen on the phone, not to identify one."""
    return "*" * max(len(bsn) - 3, 0) + bsn[-3:]
