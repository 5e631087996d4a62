"""Serve a baseline app as `dk-adapter serve` serves the adapter: gunicorn gthread workers
over mutual TLS with `adapter.transport.tls.server_context` (same protocol versions,
ciphers, client-certificate and CRL checks), the same keep-alive; gthread workers with a
listening socket each (`reuse_port`), as the baselines have always been measured.

Run: `python -m bench.baselines.serve --app bare_lxml|bare_lxml_signed|spyne --port N
--pki DIR [--front]` (DIR as `adapter.pki.devca.init_dev_pki` writes it). Stops on SIGTERM.

`--front` serves the app on the adapter's own worker (adapter.transport.worker.FrontWorker:
asyncio front, h11, a thread pool) instead of gthread, with the front's default limits: the
difference between the two is what the front costs per request. Its workers accept from one
socket as the adapter's do, the one holding the fewest connections first
(adapter.transport.balance).
"""

from __future__ import annotations

import argparse
import ssl
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from gunicorn.app.base import BaseApplication

from adapter.config import ServerConfig, TlsConfig
from adapter.transport.balance import WorkerConnections
from adapter.transport.tls import server_context
from bench.baselines.bare_lxml import WsgiApp

APPS = ("bare_lxml", "bare_lxml_signed", "spyne")
KEEPALIVE_SECONDS = 30  # the adapter's default server.keepalive_seconds


def load_app(name: str, pki: Path) -> WsgiApp:
    if name == "bare_lxml":
        from bench.baselines.bare_lxml import app

        return app
    if name == "bare_lxml_signed":
        from bench.baselines.bare_lxml import signed_app

        return signed_app(
            pki / "receipt-signing.key", pki / "receipt-signing.pem", pki / "chain.pem"
        )
    from bench.baselines.spyne_app import app as spyne_app

    wsgi: WsgiApp = spyne_app
    return wsgi


class BaselineServer(BaseApplication):  # type: ignore[misc]
    def __init__(
        self, app: str, port: int, pki: Path, workers: int, threads: int, front: bool = False
    ) -> None:
        self.app, self.port, self.pki = app, port, pki
        self.workers, self.threads, self.front = workers, threads, front
        self.tls = TlsConfig(
            certificate=pki / "server.pem",
            private_key=pki / "server.key",
            trust_anchors=pki / "root-ca.pem",
            intermediates=pki / "chain.pem",
            crl=pki / "crl.pem",
            openssl_conf=None,
        )
        self._context: ssl.SSLContext | None = None
        # What FrontWorker reads of the adapter's configuration: the front's limits, the TLS.
        self.config = SimpleNamespace(
            server=ServerConfig(
                host="127.0.0.1",
                port=port,
                public_url="",
                workers=workers,
                threads=threads,
                keepalive_seconds=KEEPALIVE_SECONDS,
            ),
            tls=self.tls,
        )
        super().__init__()

    def tls_context(self) -> ssl.SSLContext:
        """The server context, as FrontWorker asks its application for it."""
        return self._ssl_context(None, None)

    def _ssl_context(self, _conf: Any, _default_factory: Any) -> ssl.SSLContext:
        if self._context is None:
            self._context = server_context(self.tls)
        return self._context

    def load_config(self) -> None:
        settings = {
            "bind": [f"127.0.0.1:{self.port}"],
            "workers": self.workers,
            "worker_class": "adapter.transport.worker.FrontWorker" if self.front else "gthread",
            "threads": self.threads,
            "keepalive": KEEPALIVE_SECONDS,
            # FrontWorker does its own TLS; given these, gunicorn would wrap its socket too.
            **(
                {}
                if self.front
                else {
                    "certfile": str(self.tls.certificate),
                    "keyfile": str(self.tls.private_key),
                    "ssl_context": self._ssl_context,
                }
            ),
            **(self._balanced() if self.front else {"reuse_port": True}),
            "proc_name": f"bench-{self.app}",
            "control_socket_disable": True,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
        }
        for key, value in settings.items():
            self.cfg.set(key, value)

    def _balanced(self) -> dict[str, Any]:
        """The adapter's way: one socket, the workers' connection table (FrontWorker reads it)."""
        self.worker_connections = WorkerConnections()
        return self.worker_connections.gunicorn_settings()

    def load(self) -> WsgiApp:
        return load_app(self.app, self.pki)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--app", choices=APPS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--front", action="store_true", help="the adapter's worker, not gthread")
    args = parser.parse_args(argv)
    BaselineServer(args.app, args.port, args.pki, args.workers, args.threads, args.front).run()


if __name__ == "__main__":
    main()
