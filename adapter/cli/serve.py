"""`dk-adapter serve`: the mTLS server, its workers and the scheduler (adapter.wiring)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

from adapter.cli.base import Commands, ConfigLoader
from adapter.config import check_files


def cmd_serve(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    config = config_loader(args)
    check_files(config)
    # Both are read once, when their library loads, and the CLI has loaded both already:
    # OpenSSL its configuration with the ssl module, prometheus_client whether workers share
    # their samples. So the server starts afresh, in a process with both set from the start.
    environment = dict(os.environ)
    openssl_conf = config.tls.openssl_conf
    if openssl_conf is not None:
        environment["OPENSSL_CONF"] = str(openssl_conf)
    if "PROMETHEUS_MULTIPROC_DIR" not in environment:
        environment["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dk-adapter-metrics-")
    if environment != os.environ:
        os.execve(  # noqa: S606 - re-executing ourselves with a fixed argv, no shell
            sys.executable, [sys.executable, "-m", "adapter.cli", *sys.argv[1:]], environment
        )
    from adapter.logs import configure_logging
    from adapter.wiring import serve

    configure_logging(config.logging)
    serve(config)
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    commands.add_parser("serve", help="serve over mutual TLS").set_defaults(
        func=lambda args: cmd_serve(args, config_loader)
    )
