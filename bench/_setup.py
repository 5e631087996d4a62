"""Set-up shared by the benchmarks: a dev PKI, a database, a config, a running server, /proc.

The pieces come from the test suite (`tests.conftest`); the ones that are pytest fixtures there
(PKI, database schema, server) are rebuilt here as plain functions and context managers.
Everything stays on loopback and in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.config import load_organisations
from adapter.pki.devca import OrganisationSubject, PkiFiles, init_dev_pki
from tests.conftest import (
    CONF,
    GEMEENTE,
    POSTGRES_URL,
    ClientCert,
    Pki,
    _wait_for_port,
    free_port,
    run_cli,
    write_config,
)

__all__ = [
    "CONF",
    "GEMEENTE",
    "POSTGRES_URL",
    "RunningServer",
    "build_pki",
    "children",
    "connections_per_process",
    "count_rows",
    "cpu_seconds",
    "database",
    "peak_rss_kib",
    "running_server",
]


# --- PKI, database, server ---------------------------------------------------------------


def build_pki(directory: Path) -> PkiFiles:
    """A dev PKI with a client certificate for every organisation in conf/organisations.toml."""
    organisations = load_organisations(CONF / "organisations.toml")
    return init_dev_pki(
        directory,
        [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
    )


def _config_pki(files: PkiFiles) -> Pki:
    """`tests.conftest.Pki` for `write_config`, which reads only its directory.

    The special certificates of the test PKI (expired, revoked, ...) are not made; the
    benchmark never uses them, so they point at the GEMEENTE client.
    """
    clients = {oin: ClientCert(c.certificate, c.private_key) for oin, c in files.clients.items()}
    gemeente = clients[GEMEENTE]
    return Pki(
        files=files,
        directory=files.directory,
        clients=clients,
        unknown_oin=gemeente,
        no_oin=gemeente,
        expired=gemeente,
        untrusted=gemeente,
        revoked=gemeente,
    )


@contextmanager
def database(kind: str, directory: Path) -> Iterator[str]:
    """A database URL: SQLite in `directory`, or a fresh PostgreSQL schema dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / 'adapter.db'}"
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
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


def count_rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - a literal table name
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


@dataclass(frozen=True)
class RunningServer:
    port: int
    pid: int
    config: Path
    database_url: str
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_server(directory: Path, files: PkiFiles, database_url: str) -> Iterator[RunningServer]:
    """`python -m adapter.cli --config CFG serve` (2 workers x 4 threads) with the example
    accounts imported; stopped (SIGTERM, then SIGKILL after 15 s) however the block ends."""
    port = free_port()
    config = write_config(directory, _config_pki(files), database_url, port)
    imported = run_cli(
        "accounts",
        "import",
        str(CONF / "accounts.example.csv"),
        "--quiet",
        config=config,
        database_url=database_url,
    )
    if imported.returncode != 0:
        raise RuntimeError(f"accounts import failed:\n{imported.stdout}{imported.stderr}")
    log = directory / "server.log"
    env = {**os.environ, "DATABASE_URL": database_url}
    with log.open("wb") as log_handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "adapter.cli", "--config", str(config), "serve"],
            env=env,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process, log)
        yield RunningServer(port, process.pid, config, database_url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- /proc ---------------------------------------------------------------------------------

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name (which may hold spaces): state first."""
    data = Path(f"/proc/{pid}/stat").read_text()
    return data.rpartition(")")[2].split()


def children(pid: int) -> list[int]:
    """PIDs whose parent is `pid` (a scan of /proc/*/stat; /proc/PID/task/*/children needs
    CONFIG_PROC_CHILDREN, which this kernel may lack)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat_fields(int(entry.name))[1]) == pid:
                found.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return sorted(found)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the process's peak resident set size."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise ValueError(f"no VmHWM for {pid}")


def _established_inodes(port: int) -> set[int]:
    """Socket inodes of established TCP connections whose local port is `port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rpartition(":")[2], 16)
            if local_port == port and fields[3] == "01":  # 01 = TCP_ESTABLISHED
                inodes.add(int(fields[9]))
    return inodes


def connections_per_process(port: int, pids: list[int]) -> tuple[dict[int, int], int]:
    """How many established connections to `port` each process holds an fd of, and how many
    established connections no process in `pids` holds."""
    inodes = _established_inodes(port)
    held: dict[int, int] = {}
    seen: set[int] = set()
    for pid in pids:
        mine = set()
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:["):
                    inode = int(target[len("socket:[") : -1])
                    if inode in inodes:
                        mine.add(inode)
        except OSError:
            pass
        held[pid] = len(mine)
        seen |= mine
    return held, len(inodes - seen)
