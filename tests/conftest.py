"""Shared fixtures: one dev PKI per session, a real server per module and database kind.

Every end-to-end test talks to `dk-adapter serve` (gunicorn, our asyncio front and TLS context) over
real mutual TLS on loopback, once with SQLite and once with PostgreSQL. PostgreSQL runs get
a schema of their own that is dropped afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from adapter.config import load_organisations
from adapter.pki.devca import (
    DevHierarchy,
    OrganisationSubject,
    PkiFiles,
    init_dev_pki,
    load_hierarchy,
    new_hierarchy,
    revoke,
)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
POSTGRES_URL = os.environ.get("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

GEMEENTE = "00000099000000002000"  # subscribed-to by 999993653 in accounts.example.csv
BELASTINGDIENST = "00000099000000001000"  # by_law
STRIKT = "00000099000000003000"  # requires WS-Addressing (2W-be)
UNKNOWN_OIN = "00000099000000009000"  # a valid OIN that is not in organisations.toml
ZAAK_TABLES = ("zaken", "zaak_statussen", "notifications")  # Lopende Zaken business rows


@dataclass(frozen=True)
class ClientCert:
    """PEM files of one client certificate, as `requests` wants them."""

    certificate: Path
    key: Path

    @property
    def pair(self) -> tuple[str, str]:
        return (str(self.certificate), str(self.key))


@dataclass(frozen=True)
class Pki:
    files: PkiFiles
    directory: Path
    clients: dict[str, ClientCert]  # by OIN, plus the special ones below
    unknown_oin: ClientCert
    no_oin: ClientCert
    expired: ClientCert
    untrusted: ClientCert
    revoked: ClientCert

    @property
    def root(self) -> Path:
        return self.directory / "root-ca.pem"


def _write_client(directory: Path, name: str, issued: object, chain: bytes) -> ClientCert:
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    certificate.write_bytes(issued.cert_pem() + chain)  # type: ignore[attr-defined]
    key.write_bytes(issued.key_pem())  # type: ignore[attr-defined]
    return ClientCert(certificate, key)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    organisations = load_organisations(CONF / "organisations.toml")
    files = init_dev_pki(
        directory,
        [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
    )
    hierarchy: DevHierarchy = load_hierarchy(directory)
    chain = hierarchy.chain_pem()
    extra = directory / "extra"
    extra.mkdir()
    tsp = hierarchy.tsp
    now = datetime.now(UTC)
    revoked = tsp.issue_tls_certificate("Ingetrokken", oin="00000099000000008000")
    revoke(directory, revoked.certificate.serial_number)
    other = new_hierarchy("Other")
    return Pki(
        files=files,
        directory=directory,
        clients={oin: ClientCert(c.certificate, c.private_key) for oin, c in files.clients.items()},
        unknown_oin=_write_client(
            extra, "unknown", tsp.issue_tls_certificate("Onbekend", oin=UNKNOWN_OIN), chain
        ),
        no_oin=_write_client(
            extra, "no-oin", tsp.issue_tls_certificate("Zonder OIN", oin=None), chain
        ),
        expired=_write_client(
            extra,
            "expired",
            tsp.issue_tls_certificate(
                "Verlopen",
                oin=GEMEENTE,
                not_before=now - timedelta(days=400),
                not_after=now - timedelta(days=1),
            ),
            chain,
        ),
        untrusted=_write_client(
            extra,
            "untrusted",
            other.tsp.issue_tls_certificate("Vreemd", oin=GEMEENTE),
            other.chain_pem(),
        ),
        revoked=_write_client(extra, "revoked", revoked, chain),
    )


@contextmanager
def postgres_schema(prefix: str = "t") -> Iterator[str]:
    """A URL for a new, empty schema in the PostgreSQL test database, dropped afterwards."""
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    url = make_url(POSTGRES_URL)
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Each module runs once on SQLite and once on PostgreSQL, in a schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'adapter.db'}"
        return
    with postgres_schema() as url:
        yield url


# Ports for servers the tests start later: below Linux's ephemeral range (32768 and up), where
# the kernel's port 0 and every outgoing connection take theirs, and one slice per pytest-xdist
# process. A port the kernel handed out as free was seen taken by another process's socket
# before the server that was to listen on it bound it ("Address already in use").
_TEST_PORTS = range(20_000, 32_768)
_next_ports: Iterator[int] | None = None


def _ports_of_this_process() -> Iterator[int]:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker) if worker.isdigit() else 0
    share = len(_TEST_PORTS) // max(workers, 1)
    start = _TEST_PORTS.start + index * share
    return itertools.cycle(range(start, start + share))


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on now, and no other test process will hand out."""
    global _next_ports
    if _next_ports is None:
        _next_ports = _ports_of_this_process()
    for _ in range(len(_TEST_PORTS)):
        port = next(_next_ports)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use: another program's, or a server of an earlier test
            return port
    raise RuntimeError("no free test port left")


def write_cpas(directory: Path, port: int, peer_port: int) -> Path:
    """The example CPAs with the test's endpoints and second-scale reliability settings."""
    cpa_dir = directory / "cpa"
    cpa_dir.mkdir(parents=True, exist_ok=True)
    for source in (CONF / "cpa").glob("*.xml"):
        text = source.read_text(encoding="utf-8")
        text = text.replace("https://127.0.0.1:8443/", f"https://127.0.0.1:{port}/")
        text = text.replace("https://127.0.0.1:8444/", f"https://127.0.0.1:{peer_port}/")
        text = text.replace("<tp:RetryInterval>PT3H<", "<tp:RetryInterval>PT1S<")
        text = text.replace("<tp:Retries>8<", "<tp:Retries>5<")
        text = text.replace("<tp:PersistDuration>P1D<", "<tp:PersistDuration>PT60S<")
        (cpa_dir / source.name).write_text(text, encoding="utf-8")
    return cpa_dir


def write_config(
    directory: Path,
    pki: Pki,
    database_url: str,
    port: int,
    peer_port: int | None = None,
    admin_port: int | None = None,
    citizen_port: int | None = None,
) -> Path:
    """An adapter.toml for a test server, pointing at the session's PKI.

    The CPAs send organisations' messages to 127.0.0.1:`peer_port`, where ebMS tests run
    their peer; the outbox is polled every 0.2 s and retries after 1 s. The citizen pages
    listen on `citizen_port` with the development login, and e-mail goes to files in the
    test's own directory.
    """
    conf = directory / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    citizen_port = citizen_port or free_port()
    shutil.copy(CONF / "organisations.toml", conf / "organisations.toml")
    cpa_dir = write_cpas(directory, port, peer_port or free_port())
    certs = pki.directory
    config = conf / "adapter.toml"
    config.write_text(
        f"""
base_dir = "{ROOT}"
[server]
listen = "127.0.0.1:{port}"
public_url = "https://127.0.0.1:{port}"
workers = 2
threads = 4
[database]
url = "{database_url}"
[tls]
certificate = "{certs / "server.pem"}"
private_key = "{certs / "server.key"}"
trust_anchors = "{certs / "root-ca.pem"}"
intermediates = "{certs / "chain.pem"}"
crl = "{certs / "crl.pem"}"
[receipts]
certificate = "{certs / "receipt-signing.pem"}"
private_key = "{certs / "receipt-signing.key"}"
algorithm = "ecdsa-sha256"
[admin]
listen = "127.0.0.1:{admin_port or free_port()}"
[citizen]
listen = "127.0.0.1:{citizen_port}"
public_url = "http://127.0.0.1:{citizen_port}"
dev_login = true
[mail]
directory = "{directory / "mail"}"
[ebms]
cpa_dir = "{cpa_dir}"
blob_dir = "{directory / "blobs"}"
outbox_poll_seconds = 0.2
[files]
organisations = "{conf / "organisations.toml"}"
""",
        encoding="utf-8",
    )
    return config


def run_cli(*args: str, config: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "adapter.cli", "--config", str(config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def import_example_accounts(config: Path, database_url: str) -> None:
    """`dk-adapter accounts import` of conf/accounts.example.csv, as `make run` does first.

    In this process, through the same `main` as the command line: a subprocess would import
    the adapter once more for every server a test starts (the CLI's own tests run it as one).
    """
    from adapter.cli import main

    saved = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = database_url
    try:
        args = ["--config", str(config), "accounts", "import"]
        status = main([*args, str(CONF / "accounts.example.csv"), "--quiet"])
    finally:
        if saved is None:
            del os.environ["DATABASE_URL"]
        else:
            os.environ["DATABASE_URL"] = saved
    if status != 0:
        raise RuntimeError(f"accounts import of {config} failed with status {status}")


@dataclass
class Server:
    url: str
    config: Path
    database_url: str
    engine: Engine
    process: subprocess.Popen[bytes]
    log: Path
    peer_port: int  # where the CPAs send organisations' ebMS messages
    admin_url: str  # the plain-HTTP admin listener: /health, /ready, /metrics
    citizen_url: str  # the citizen pages (development login)

    def restart(self) -> None:
        """Stop the adapter (SIGTERM) and start it again on the same configuration."""
        stop_server(self.process)
        self.process = start_server(self.config, self.database_url, self.log)
        for url in (self.url, self.admin_url, self.citizen_url):
            _wait_for_port(int(url.rsplit(":", 1)[1]), self.process, self.log)

    def count(self, table: str, where: str = "1=1") -> int:
        with self.engine.connect() as conn:
            query = text(f"SELECT count(*) FROM {table} WHERE {where}")  # noqa: S608 - test literals
            return int(conn.execute(query).scalar_one())

    def counts(self, *tables: str) -> dict[str, int]:
        return {table: self.count(table) for table in tables}


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    # Generous: on a loaded two-core machine a cold start of the scheduler process (imports)
    # has been seen to take tens of seconds; a healthy start takes one or two.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()}")


@contextmanager
def running_server(
    pki: Pki,
    database_url: str,
    directory: Path,
    prepare: Callable[[Path], None] | None = None,
) -> Iterator[Server]:
    """`dk-adapter serve` with the example accounts loaded, stopped afterwards.

    `prepare(directory)` may change the written configuration (organisations, CPAs) first.
    """
    port, peer_port, admin_port, citizen_port = (free_port() for _ in range(4))
    config = write_config(directory, pki, database_url, port, peer_port, admin_port, citizen_port)
    if prepare is not None:
        prepare(directory)
    import_example_accounts(config, database_url)
    log = directory / "server.log"
    process = start_server(config, database_url, log)
    engine = create_engine(database_url)
    server = Server(
        f"https://127.0.0.1:{port}",
        config,
        database_url,
        engine,
        process,
        log,
        peer_port,
        f"http://127.0.0.1:{admin_port}",
        f"http://127.0.0.1:{citizen_port}",
    )
    try:
        _wait_for_port(port, process, log)
        _wait_for_port(admin_port, process, log)  # the scheduler process is up as well
        _wait_for_port(citizen_port, process, log)  # and the citizen listener
        yield server
    finally:
        stop_server(server.process)
        engine.dispose()


@pytest.fixture(scope="module")
def server(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`dk-adapter serve` with the example accounts loaded."""
    with running_server(pki, database_url, tmp_path_factory.mktemp("server")) as running:
        yield running


def start_server(config: Path, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url}
    with log.open("ab") as log_handle:
        return subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "--config", str(config), "serve"],
            env=env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one (stop_server)
        )


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's whole process group at once, as systemd (KillMode=control-group)
    and a terminal's Ctrl-C do; the master still waits for its side processes before it exits.
    """
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait(timeout=10)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group is gone already
        os.killpg(process.pid, signum)


# --- WS-Security (Digikoppeling 2W-be-S and 2W-be-SE) -----------------------------------------

SIGNED = "00000099000000004000"  # wus_profile 2W-be-S, receipt "wsse"
SEALED = "00000099000000005000"  # wus_profile 2W-be-SE, receipt "wsse"
WSS_ORGANISATIONS = (
    (SIGNED, "Gemeente Ondertekend (2W-be-S)", "2W-be-S"),
    (SEALED, "Gemeente Versleuteld (2W-be-SE)", "2W-be-SE"),
)


def add_wss_organisations(directory: Path) -> None:
    """A `running_server` prepare step: the WS-Security organisations added to the test's
    organisations.toml (the example file stays without them)."""
    entries = "".join(
        f'\n[[organisation]]\noin = "{oin}"\nname = "{name}"\n'
        f'services = ["ValidateAbonnementen", "LopendeZaken"]\nbericht_types = ["BESLUIT"]\n'
        f'wus_profile = "{profile}"\nreceipt = "wsse"\n'
        for oin, name, profile in WSS_ORGANISATIONS
    )
    organisations = directory / "conf" / "organisations.toml"
    organisations.write_text(organisations.read_text(encoding="utf-8") + entries, encoding="utf-8")


@pytest.fixture(scope="session")
def wss_clients(pki: Pki) -> dict[str, ClientCert]:
    """Client certificates (TLS and WS-Security signing) of the WS-Security organisations."""
    from adapter.pki.devca import issue_client

    clients = {}
    for oin, name, _profile in WSS_ORGANISATIONS:
        files = issue_client(pki.directory, OrganisationSubject(oin, name, None), overwrite=True)
        clients[oin] = ClientCert(files.certificate, files.private_key)
    return clients
