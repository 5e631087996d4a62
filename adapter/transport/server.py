"""gunicorn serving a WSGI app over mutual TLS, configured from our Config.

The master is gunicorn's; each worker is our asyncio front (adapter.transport.worker), which
does the TLS handshake itself with the context built here. Which app it serves is not its
business: `run_server` gets a factory that each worker calls after the fork (adapter.wiring
builds the adapter's).
"""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Iterable
from typing import Any

from gunicorn.app.base import BaseApplication

from adapter.config import Config, ConfigError, check_files, load_config
from adapter.transport.balance import WorkerConnections
from adapter.transport.tls import server_context

log = logging.getLogger("adapter.server")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
AppFactory = Callable[[Config], WsgiApp]


def _worker_exited(_server: Any, worker: Any) -> None:
    # A dead worker's live gauges must not linger in the shared metrics directory.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class AdapterServer(BaseApplication):  # type: ignore[misc]
    def __init__(self, config: Config, app_factory: AppFactory) -> None:
        self.config = config
        self.app_factory = app_factory
        self._context: ssl.SSLContext | None = None
        # Mapped here, before any fork, so that every worker shares it.
        self.worker_connections = WorkerConnections()
        super().__init__()

    def tls_context(self) -> ssl.SSLContext:
        """The server's TLS context, built once per process (again after a reload)."""
        if self._context is None:
            self._context = server_context(self.config.tls)
        return self._context

    def load_config(self) -> None:
        server = self.config.server
        settings = {
            "bind": [f"{server.host}:{server.port}"],
            "workers": server.workers,
            "worker_class": "adapter.transport.worker.FrontWorker",
            "threads": server.threads,
            "keepalive": server.keepalive_seconds,
            # One socket, the master's, which every worker accepts from; the worker holding
            # the fewest connections takes the next (adapter.transport.balance).
            **self.worker_connections.gunicorn_settings(on_exit=_worker_exited),
            "proc_name": "dk-adapter",
            # gunicorn's control socket lives at one fixed path per user, so two adapters
            # (or test servers) would fight over it; operations go through signals instead.
            "control_socket_disable": True,
            "when_ready": self._log_address,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def reload(self) -> None:
        """SIGHUP: read configuration, organisations, CPAs and CRLs again for the new workers.

        gunicorn then replaces its workers gracefully: requests in flight finish on the old
        ones. A configuration that no longer validates is refused and the old one kept.
        """
        try:
            config = load_config(self.config.file)
            check_files(config)
        except ConfigError as exc:
            log.error("reload refused, keeping the running configuration: %s", exc)
        else:
            self.config = config
            self._context = None  # the next connection builds it with the new CRLs
            log.info("configuration reloaded from %s", config.file)
        super().reload()

    def _log_address(self, _arbiter: Any) -> None:
        # gunicorn's own "Listening at" line says http://: the TLS is the workers' own.
        server = self.config.server
        log.info("mTLS listener at https://%s:%s", server.host, server.port)

    def load(self) -> WsgiApp:
        return self.app_factory(self.config)


def run_server(config: Config, app_factory: AppFactory) -> None:
    """Serve until gunicorn is told to stop; returns in the master and in every worker."""
    AdapterServer(config, app_factory).run()
