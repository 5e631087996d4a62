"""The citizen listener: the citizen app under gunicorn, plain HTTP on its own port.

TLS for citizens is terminated in front of it (a reverse proxy) in production, so nothing
here shares the mTLS listener's TLS settings. `dk-adapter serve` starts it as a process of
its own; `python -m adapter.citizen.server CONFIG` runs it alone.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

from adapter.citizen.app import CitizenApp
from adapter.config import Config, load_config
from adapter.logs import configure_logging
from adapter.store import citizen as store
from adapter.store.db import Database

log = logging.getLogger("adapter.citizen")

# Page rendering is light and the database does the work: a few threads in one or two
# workers serve a development machine or a node behind a load balancer alike.
WORKERS = 2
THREADS = 8


class CitizenServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config) -> None:
        self.config = config
        super().__init__()

    def load_config(self) -> None:
        citizen = self.config.citizen
        settings = {
            "bind": [f"{citizen.host}:{citizen.port}"],
            "workers": WORKERS,
            "worker_class": "gthread",
            "threads": THREADS,
            "proc_name": "dk-adapter-citizen",
            "control_socket_disable": True,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Each worker builds its own engine after the fork.
        return CitizenApp(self.config, Database(self.config.database_url))


def announcement(config: Config, database: Database) -> str:
    """The start-up line for the developer: the address to open and, with the development
    login on, a BSN to log in with, taken from the accounts so that it names one that exists."""
    line = f"Burgerpagina's: {config.citizen.public_url.rstrip('/')}/"
    if not config.citizen.dev_login:
        return line
    with database.transaction() as session:
        bsn = store.example_login(session)
    if bsn is None:
        return f"{line} (ontwikkel-login; nog geen accounts: dk-adapter accounts import FILE.csv)"
    return f"{line} (ontwikkel-login met BSN {bsn})"


def run_citizen_server(config_file: Path) -> None:
    """Serve the citizen pages until SIGTERM, migrating the schema first when run alone.

    Migrating is safe beside `dk-adapter serve` doing the same: the migration takes a lock.
    """
    config = load_config(config_file)
    configure_logging(config.logging)
    database = Database(config.database_url)
    database.create_schema()
    if config.citizen.dev_login:
        # Printed, not logged: a log record never holds a full BSN. This line exists only
        # with the development login, for whoever started `make run` at a terminal.
        print(announcement(config, database), flush=True)
    else:
        log.info("citizen pages at %s/", config.citizen.public_url.rstrip("/"))
    database.dispose()  # the workers build their own engines after the fork
    CitizenServer(config).run()


if __name__ == "__main__":
    run_citizen_server(Path(sys.argv[1]))
