"""Configuration: `conf/adapter.toml` and `conf/organisations.toml`, validated into plain values.

Every problem is reported as a `ConfigError` that names the file, the key and the reason, so an
administrator can fix it without reading code. Nothing else in the adapter reads these files.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

SERVICES = frozenset({"ValidateAbonnementen", "BerichtVerwerk", "LopendeZaken"})
WUS_PROFILES = frozenset({"none", "2W-be"})
RECEIPT_PLACEMENTS = frozenset({"header", "wsse"})
RECEIPT_ALGORITHMS = frozenset({"ecdsa-sha256", "rsa-sha256"})


class ConfigError(ValueError):
    """A configuration value is missing or wrong; names file, key and reason."""

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = str(file), key, reason


@dataclass(frozen=True)
class Organisation:
    oin: str
    name: str
    kvk: str | None
    by_law: bool
    services: frozenset[str]
    bericht_types: frozenset[str]
    wus_profile: str
    receipt: str
    acts_for: frozenset[str]

    @property
    def requires_addressing(self) -> bool:
        return self.wus_profile != "none"

    def may_deliver_for(self, oin: str) -> bool:
        """True when `oin` is this organisation's own or one it acts for as intermediary."""
        return oin == self.oin or oin in self.acts_for


@dataclass(frozen=True)
class Organisations:
    by_oin: Mapping[str, Organisation]
    by_kvk: Mapping[str, Organisation]

    def find(self, oin: str | None, kvk: str | None) -> Organisation | None:
        """The organisation a certificate belongs to: by OIN, else by its G4 KvK mapping."""
        if oin is not None:
            return self.by_oin.get(oin)
        if kvk is not None:
            return self.by_kvk.get(kvk)
        return None


@dataclass(frozen=True)
class ServerConfig:
    host: str
    port: int
    public_url: str
    workers: int
    threads: int
    keepalive_seconds: int


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path
    private_key: Path
    trust_anchors: Path
    intermediates: Path
    crl: Path | None
    openssl_conf: Path | None


@dataclass(frozen=True)
class ReceiptConfig:
    certificate: Path
    private_key: Path
    algorithm: str
    receiver_oin: str


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_klanten: int
    max_ebms_message_bytes: int
    personal_attachments_bytes: int
    general_attachments_bytes: int


@dataclass(frozen=True)
class EbmsConfig:
    cpa_dir: Path
    blob_dir: Path  # attachment contents, one file per SHA-256
    outbox_poll_seconds: float


@dataclass(frozen=True)
class LopendeZakenConfig:
    retention_days: int  # a closed zaak stays visible this long after its einddatum


@dataclass(frozen=True)
class UsageConfig:
    free_units: int  # per organisation per month
    price_per_unit_cents: float  # for every unit above the free ones


@dataclass(frozen=True)
class AdminConfig:
    host: str
    port: int
    certificate_warning_days: int  # /ready fails this many days before a certificate expires


@dataclass(frozen=True)
class LoggingConfig:
    format: str  # "text" or "json"
    level: str


@dataclass(frozen=True)
class Config:
    file: Path
    base_dir: Path
    server: ServerConfig
    database_url: str
    tls: TlsConfig
    receipts: ReceiptConfig
    limits: Limits
    lopende_zaken: LopendeZakenConfig
    ebms: EbmsConfig
    usage: UsageConfig
    admin: AdminConfig
    logging: LoggingConfig
    organisations_file: Path
    organisations: Organisations


def _is_oin(value: str) -> bool:
    return len(value) == 20 and value.isdigit()


class _Section:
    """Reads one TOML table, remembering which keys were used so leftovers can be refused."""

    def __init__(self, file: Path, name: str, table: Any) -> None:
        if not isinstance(table, dict):
            raise ConfigError(file, name, "must be a table")
        self.file, self.name, self.table = file, name, table
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.name}.{key}" if self.name else key

    def get(
        self,
        key: str,
        kind: type | tuple[type, ...],
        default: Any = ...,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        self.used.add(key)
        if key not in self.table:
            if default is ...:
                raise ConfigError(self.file, self._key(key), "is required")
            return default
        value = self.table[key]
        # bool is an int in Python; a port of `true` is a mistake, not 1.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ConfigError(self.file, self._key(key), f"must be a {names}, not {value!r}")
        if check is not None and (problem := check(value)):
            raise ConfigError(self.file, self._key(key), problem)
        return value

    def string_list(
        self, key: str, default: list[str], allowed: frozenset[str] | None = None
    ) -> frozenset[str]:
        values = self.get(key, list, default)
        for value in values:
            if not isinstance(value, str):
                raise ConfigError(self.file, self._key(key), f"must list strings, not {value!r}")
            if allowed is not None and value not in allowed:
                raise ConfigError(
                    self.file, self._key(key), f"{value!r} is not one of {sorted(allowed)}"
                )
        return frozenset(values)

    def finish(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise ConfigError(self.file, self._key(unknown[0]), "unknown key")


def _read_toml(file: Path) -> dict[str, Any]:
    try:
        with file.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(file, "-", "file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "-", f"not valid TOML: {exc}") from None


def _positive(value: int) -> str | None:
    return None if value > 0 else "must be greater than 0"


def _one_of(allowed: frozenset[str]) -> Callable[[str], str | None]:
    return lambda value: None if value in allowed else f"must be one of {sorted(allowed)}"


def _oin_check(value: str) -> str | None:
    return None if _is_oin(value) else "must be a 20-digit OIN"


def _listen_check(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return "must be HOST:PORT"
    return None


def _https_check(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        return "must be an https:// URL"
    return None


def load_organisations(file: Path) -> Organisations:
    data = _read_toml(file)
    entries = data.pop("organisation", [])
    if data:
        raise ConfigError(file, sorted(data)[0], "unknown key (expected [[organisation]] tables)")
    if not isinstance(entries, list):
        raise ConfigError(file, "organisation", "must be an array of tables ([[organisation]])")
    by_oin: dict[str, Organisation] = {}
    by_kvk: dict[str, Organisation] = {}
    for index, table in enumerate(entries):
        section = _Section(file, f"organisation[{index}]", table)
        org = Organisation(
            oin=section.get("oin", str, check=_oin_check),
            name=section.get("name", str, check=lambda v: None if v.strip() else "is empty"),
            kvk=section.get(
                "kvk",
                str,
                None,
                lambda v: None if len(v) == 8 and v.isdigit() else "must be 8 digits",
            ),
            by_law=section.get("by_law", bool, False),
            services=section.string_list("services", [], SERVICES),
            bericht_types=section.string_list("bericht_types", []),
            wus_profile=section.get("wus_profile", str, "none", _one_of(WUS_PROFILES)),
            receipt=section.get("receipt", str, "header", _one_of(RECEIPT_PLACEMENTS)),
            acts_for=section.string_list("acts_for", []),
        )
        section.finish()
        for code in org.bericht_types:
            if not 1 <= len(code) <= 8:
                raise ConfigError(
                    file, f"{section.name}.bericht_types", f"{code!r} is not 1-8 characters"
                )
        for oin in org.acts_for:
            if not _is_oin(oin):
                raise ConfigError(
                    file, f"{section.name}.acts_for", f"{oin!r} is not a 20-digit OIN"
                )
        if org.receipt == "wsse":
            raise ConfigError(
                file, f"{section.name}.receipt", '"wsse" is not available yet; use "header"'
            )
        if org.oin in by_oin:
            raise ConfigError(file, f"{section.name}.oin", f"{org.oin} is listed twice")
        by_oin[org.oin] = org
        if org.kvk is not None:
            if org.kvk in by_kvk:
                raise ConfigError(file, f"{section.name}.kvk", f"{org.kvk} is listed twice")
            by_kvk[org.kvk] = org
    return Organisations(by_oin=by_oin, by_kvk=by_kvk)


def _database_url(file: Path, value: str, base_dir: Path) -> str:
    try:
        url = make_url(value)
    except Exception:
        raise ConfigError(file, "database.url", f"{value!r} is not a database URL") from None
    if url.get_backend_name() not in {"sqlite", "postgresql"}:
        raise ConfigError(file, "database.url", "only sqlite and postgresql are supported")
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # A relative SQLite path would otherwise follow the working directory of whoever starts us.
        path = Path(url.database)
        if not path.is_absolute():
            url = url.set(database=str(base_dir / path))
    return url.render_as_string(hide_password=False)


def load_config(file: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate adapter.toml and the organisations file it names."""
    file = Path(file).resolve()
    environ = os.environ if environ is None else environ
    data = _read_toml(file)
    top = _Section(file, "", data)
    base_dir: Path = (file.parent / top.get("base_dir", str, "..")).resolve()

    def path(section: _Section, key: str, default: Any = ...) -> Path:
        value: str = section.get(key, str, default)
        return base_dir / value

    server = _Section(file, "server", top.get("server", dict))
    listen = server.get("listen", str, "127.0.0.1:8443", _listen_check)
    host, _, port = listen.rpartition(":")
    server_config = ServerConfig(
        host=host,
        port=int(port),
        public_url=server.get("public_url", str, check=_https_check).rstrip("/"),
        workers=server.get("workers", int, 2, _positive),
        threads=server.get("threads", int, 4, _positive),
        keepalive_seconds=server.get("keepalive_seconds", int, 30, _positive),
    )
    server.finish()

    database = _Section(file, "database", top.get("database", dict))
    configured_url = database.get("url", str)
    database_url = _database_url(file, environ.get("DATABASE_URL") or configured_url, base_dir)
    database.finish()

    tls = _Section(file, "tls", top.get("tls", dict))
    crl = tls.get("crl", str, "")
    openssl_conf = tls.get("openssl_conf", str, "conf/openssl-tls.cnf")
    tls_config = TlsConfig(
        certificate=path(tls, "certificate"),
        private_key=path(tls, "private_key"),
        trust_anchors=path(tls, "trust_anchors"),
        intermediates=path(tls, "intermediates"),
        crl=base_dir / crl if crl else None,
        openssl_conf=base_dir / openssl_conf if openssl_conf else None,
    )
    tls.finish()

    receipts = _Section(file, "receipts", top.get("receipts", dict))
    receipt_config = ReceiptConfig(
        certificate=path(receipts, "certificate"),
        private_key=path(receipts, "private_key"),
        algorithm=receipts.get("algorithm", str, "ecdsa-sha256", _one_of(RECEIPT_ALGORITHMS)),
        receiver_oin=receipts.get("receiver_oin", str, "00000004003214345001", _oin_check),
    )
    receipts.finish()

    limits = _Section(file, "limits", top.get("limits", dict, {}))
    limits_config = Limits(
        max_request_bytes=limits.get("max_request_bytes", int, 4 * 1024 * 1024, _positive),
        max_klanten=limits.get("max_klanten", int, 250, _positive),
        max_ebms_message_bytes=limits.get(
            "max_ebms_message_bytes", int, 100 * 1024 * 1024, _positive
        ),
        personal_attachments_bytes=limits.get(
            "personal_attachments_bytes", int, 512_000, _positive
        ),
        general_attachments_bytes=limits.get(
            "general_attachments_bytes", int, 2 * 1024 * 1024, _positive
        ),
    )
    limits.finish()

    zaken = _Section(file, "lopende_zaken", top.get("lopende_zaken", dict, {}))
    zaken_config = LopendeZakenConfig(
        retention_days=zaken.get("retention_days", int, 365, _positive),
    )
    zaken.finish()

    ebms = _Section(file, "ebms", top.get("ebms", dict, {}))
    ebms_config = EbmsConfig(
        cpa_dir=path(ebms, "cpa_dir", "conf/cpa"),
        blob_dir=path(ebms, "blob_dir", "var/blobs"),
        outbox_poll_seconds=float(ebms.get("outbox_poll_seconds", (int, float), 5, _positive)),
    )
    ebms.finish()

    usage = _Section(file, "usage", top.get("usage", dict, {}))
    usage_config = UsageConfig(
        free_units=usage.get(
            "free_units", int, 1000, lambda v: None if v >= 0 else "must be 0 or more"
        ),
        price_per_unit_cents=float(
            usage.get(
                "price_per_unit_cents",
                (int, float),
                0,
                lambda v: None if v >= 0 else "must be 0 or more",
            )
        ),
    )
    usage.finish()

    admin = _Section(file, "admin", top.get("admin", dict, {}))
    admin_listen = admin.get("listen", str, "127.0.0.1:9464", _listen_check)
    admin_host, _, admin_port = admin_listen.rpartition(":")
    admin_config = AdminConfig(
        host=admin_host,
        port=int(admin_port),
        certificate_warning_days=admin.get("certificate_warning_days", int, 14, _positive),
    )
    admin.finish()

    logs = _Section(file, "logging", top.get("logging", dict, {}))
    logging_config = LoggingConfig(
        format=logs.get("format", str, "text", _one_of(frozenset({"text", "json"}))),
        level=logs.get(
            "level", str, "INFO", _one_of(frozenset({"DEBUG", "INFO", "WARNING", "ERROR"}))
        ),
    )
    logs.finish()

    files = _Section(file, "files", top.get("files", dict, {}))
    organisations_file = path(files, "organisations", "conf/organisations.toml")
    files.finish()
    top.finish()

    return Config(
        file=file,
        base_dir=base_dir,
        server=server_config,
        database_url=database_url,
        tls=tls_config,
        receipts=receipt_config,
        limits=limits_config,
        lopende_zaken=zaken_config,
        ebms=ebms_config,
        usage=usage_config,
        admin=admin_config,
        logging=logging_config,
        organisations_file=organisations_file,
        organisations=load_organisations(organisations_file),
    )


def check_files(config: Config) -> None:
    """Refuse to start when a certificate or key the configuration names is missing."""
    for key, file in (
        ("tls.certificate", config.tls.certificate),
        ("tls.private_key", config.tls.private_key),
        ("tls.trust_anchors", config.tls.trust_anchors),
        ("tls.intermediates", config.tls.intermediates),
        ("tls.crl", config.tls.crl),
        ("tls.openssl_conf", config.tls.openssl_conf),
        ("receipts.certificate", config.receipts.certificate),
        ("receipts.private_key", config.receipts.private_key),
    ):
        if file is not None and not file.is_file():
            raise ConfigError(
                config.file, key, f"{file} does not exist (run `dk-adapter pki init`)"
            )
