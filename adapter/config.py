"""Configuration: `conf/adapter.toml` and `conf/organisations.toml`, validated into plain values.

Every problem is reported as a `ConfigError` that names the file, the key and the reason, so an
administrator can fix it without reading code. Nothing else in the adapter reads these files.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from adapter.errors import AdapterError

SERVICES = frozenset({"ValidateAbonnementen", "BerichtVerwerk", "LopendeZaken"})
WUS_PROFILES = frozenset({"none", "2W-be", "2W-be-S", "2W-be-SE"})
# The Digikoppeling WUS profiles with WS-Security: signed (S), signed and encrypted (SE).
SIGNED_PROFILES = frozenset({"2W-be-S", "2W-be-SE"})
RECEIPT_PLACEMENTS = frozenset({"header", "wsse"})
RECEIPT_ALGORITHMS = frozenset({"ecdsa-sha256", "rsa-sha256"})


class ConfigError(AdapterError, ValueError):
    """A configuration value is missing or wrong; names file, key and reason."""

    def __init__(self, file: Path | str, key: str, reason: str) -> None:
        super().__init__(f"{file}: {key}: {reason}")
        self.file, self.key, self.reason = str(file), key, reason


# The one placeholder a berichttype's link template may hold.
REFERENTIE = "{referentie}"


@dataclass(frozen=True)
class BerichtType:
    """A BerichtType an organisation may use: its name for citizens and its deep link, if any."""

    code: str
    omschrijving: str
    active: bool = True
    link: str | None = None  # https URL template; REFERENTIE becomes the letter's Referentie

    def link_for(self, referentie: str | None) -> str | None:
        """The link into the organisation's own environment for one letter, or None.

        A template with the placeholder needs a Referentie to point anywhere; one without it
        is the same for every letter.
        """
        if self.link is None:
            return None
        if REFERENTIE not in self.link:
            return self.link
        if not referentie:
            return None
        # Quoted whole (no safe characters): the sender's value can only ever be data in
        # the URL, never add a path segment, a query parameter or a fragment.
        return self.link.replace(REFERENTIE, quote(referentie, safe=""))


@dataclass(frozen=True)
class Organisation:
    oin: str
    name: str
    kvk: str | None
    by_law: bool
    services: frozenset[str]
    bericht_types: frozenset[str]  # the active codes: what the organisation may send now
    wus_profile: str
    receipt: str
    acts_for: frozenset[str]
    # Every configured type, active or not, in the order of the file.
    bericht_type_records: tuple[BerichtType, ...] = ()
    # Refuse (TechnischProbleem) an attachment whose XMP metadata declares no PDF/A part.
    require_pdfa: bool = False

    @property
    def requires_addressing(self) -> bool:
        return self.wus_profile != "none"

    @property
    def requires_signature(self) -> bool:
        """2W-be-S and 2W-be-SE: every request signed, every answer signed (WB003, WB013)."""
        return self.wus_profile in SIGNED_PROFILES

    @property
    def requires_encryption(self) -> bool:
        """2W-be-SE: request and answer Bodies encrypted (WB005, WB012)."""
        return self.wus_profile == "2W-be-SE"

    def bericht_type(self, code: str) -> BerichtType | None:
        """The configured type with this code (active or not), or None when there is none."""
        return next((t for t in self.bericht_type_records if t.code == code), None)

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
    # Deadlines and limits of the connection front (adapter.transport.front), per worker process.
    handshake_timeout_seconds: float = 10.0
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 10.0
    max_connections_per_address: int = 32
    max_connections: int = 1000
    max_worker_memory_mib: int = 1024  # a worker above this is replaced gracefully; 0: never
    # Request bodies above 1 MiB that one worker reads or handles at once; more wait unread.
    # Unset: [limits] max_ebms_message_bytes, so two maximum messages never run at once. 0: off.
    max_body_bytes_in_flight: int = 100 * 1024 * 1024


@dataclass(frozen=True)
class TlsConfig:
    certificate: Path
    private_key: Path
    trust_anchors: Path
    intermediates: Path
    crl: Path | None
    openssl_conf: Path | None
    # CRL refresh by the scheduler (adapter.jobs.crl): its interval, URLs beyond the
    # distribution points of the configured certificates, and what one download may cost.
    crl_refresh_hours: float = 4.0
    crl_urls: tuple[str, ...] = ()
    crl_fetch_timeout_seconds: float = 10.0
    crl_max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class ReceiptConfig:
    certificate: Path
    private_key: Path
    algorithm: str
    receiver_oin: str


@dataclass(frozen=True)
class WssConfig:
    """Our WS-Security key (2W-be-S/SE): signs answers, decrypts requests; RSA."""

    certificate: Path
    private_key: Path


@dataclass(frozen=True)
class Limits:
    max_request_bytes: int
    max_klanten: int
    max_ebms_message_bytes: int
    personal_attachments_bytes: int
    general_attachments_bytes: int
    # The XML parser's limits (adapter.soap.xml.XmlLimits), checked while parsing.
    max_xml_attributes: int = 64
    max_xml_depth: int = 64
    max_xml_elements: int = 100_000
    max_xml_text_length: int = 100 * 1024 * 1024
    # A WS-A MessageID used again within this many hours is a repeat (adapter.soap.replay).
    replay_window_hours: int = 24
    # WS-Security (adapter.soap.wssecurity): the clock difference allowed with a sender, and
    # how old a wsu:Timestamp without Expires may be.
    wss_clock_skew_seconds: int = 300
    wss_max_age_seconds: int = 300


@dataclass(frozen=True)
class EbmsConfig:
    cpa_dir: Path
    blob_dir: Path  # attachment contents, one file per SHA-256
    outbox_poll_seconds: float
    # Messages (received and sent) and their payloads are purged this many days after their
    # CPA's PersistDuration; receipts and the audit chain never.
    purge_margin_days: int = 7


BLOB_STORES = frozenset({"local", "s3"})
S3_ADDRESSING = frozenset({"path", "virtual"})


@dataclass(frozen=True)
class BlobConfig:
    """Where attachment contents go (adapter.store.blobs): a directory, or an S3 bucket that
    several adapter nodes share."""

    store: str  # "local" or "s3"
    directory: Path  # the local store: `ebms.blob_dir`
    bucket: str = ""
    endpoint_url: str | None = None  # None: AWS itself
    region: str | None = None
    prefix: str = ""  # object names are prefix + SHA-256
    addressing_style: str = "path"  # bucket in the path (most S3-compatible stores) or host
    # The NAMES of the environment variables holding the key pair; None: boto3's own chain.
    access_key_env: str | None = None
    secret_key_env: str | None = None
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class LopendeZakenConfig:
    retention_days: int  # a closed zaak stays visible this long after its einddatum


# The product's published advance tariff per Berichtenbox letter, euro excluding VAT: the
# default of `[usage.tariff]`.
PUBLISHED_TARIFF: Mapping[int, Decimal] = {
    2018: Decimal("0.454"),
    2019: Decimal("0.44"),
    2020: Decimal("0.40"),
    2022: Decimal("0.32"),
}


@dataclass(frozen=True)
class UsageConfig:
    free_units: int  # per organisation per calendar year
    # year -> euro per unit (a letter) excluding VAT, from that year until the next entry
    tariff: Mapping[int, Decimal]


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
class CitizenConfig:
    """The citizen listener: web pages and the app's JSON API (plain HTTP, TLS in front)."""

    host: str
    port: int
    public_url: str  # the address citizens are sent to (login link in e-mails)
    dev_login: bool  # login by BSN without DigiD; for development only
    session_idle_minutes: int
    page_size: int


MAIL_MODES = frozenset({"files", "smtp"})
MAIL_SECURITY = frozenset({"none", "starttls", "tls"})


@dataclass(frozen=True)
class MailConfig:
    mode: str  # "files": one .eml per e-mail in `directory`; "smtp": hand to a mail server
    directory: Path
    host: str
    port: int
    security: str  # none / starttls / tls (implicit TLS)
    user: str | None
    password_env: str | None  # the NAME of the environment variable holding the password
    from_address: str
    timeout_seconds: float
    # PEM trust anchors for the mail server's certificate; None: the system's trust store.
    ca_file: Path | None = None


@dataclass(frozen=True)
class NotificationsConfig:
    interval_seconds: float
    reminder_days: int
    retry_seconds: int  # first retry after a temporary failure; doubles per attempt
    retry_max_seconds: int


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
    citizen: CitizenConfig = CitizenConfig(
        "127.0.0.1", 8080, "http://127.0.0.1:8080", False, 15, 20
    )
    mail: MailConfig = MailConfig(
        "files", Path("var/mail"), "localhost", 25, "none", None, None, "noreply@localhost", 30.0
    )
    notifications: NotificationsConfig = NotificationsConfig(60.0, 21, 60, 3600)
    blobs: BlobConfig = BlobConfig("local", Path("var/blobs"))
    wss: WssConfig | None = None  # None: the TLS certificate and key


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


def _not_negative(value: int) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def _crl_refresh_check(value: float) -> str | None:
    # Digikoppeling wants revocation known within hours; a longer interval would let a
    # revoked certificate in for longer than the CA itself allows.
    return None if 0 < value <= 4 else "must be more than 0 and at most 4 (hours)"


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


def _http_url_check(value: str) -> str | None:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return "must be an http:// or https:// URL"
    return None


def _link_template_check(value: str) -> str | None:
    if any(c.isspace() or not c.isprintable() for c in value):
        return "must be a URL without spaces or control characters"
    if "{" in value.replace(REFERENTIE, "") or "}" in value.replace(REFERENTIE, ""):
        return f"may hold no placeholder but {REFERENTIE}"
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.netloc:
        return "must be an https:// URL"
    if REFERENTIE in parts.netloc:
        # The host is the configuration's choice; a sender's Referentie may not pick it.
        return f"{REFERENTIE} may not be in the host name"
    return None


def _not_empty(value: str) -> str | None:
    return None if value.strip() else "is empty"


def _code_check(value: str) -> str | None:
    return None if 1 <= len(value) <= 8 else f"{value!r} is not 1-8 characters"


def _bericht_types(file: Path, section: _Section) -> tuple[BerichtType, ...]:
    """The flat `bericht_types` list (active, named by their code) and the records after it."""
    flat = section.table.get("bericht_types", [])
    if isinstance(flat, list) and any(isinstance(value, dict) for value in flat):
        raise ConfigError(
            file,
            f"{section.name}.bericht_types",
            "lists codes only; records go in [[organisation.bericht_type]] tables",
        )
    section.string_list("bericht_types", [])  # checks that it lists strings
    found: dict[str, BerichtType] = {}
    for code in flat:  # in the file's order; a code twice in the list is harmless
        if problem := _code_check(code):
            raise ConfigError(file, f"{section.name}.bericht_types", problem)
        found[code] = BerichtType(code, code)
    records = section.get("bericht_type", list, [])
    for index, table in enumerate(records):
        record = _Section(file, f"{section.name}.bericht_type #{index + 1}", table)
        bericht_type = BerichtType(
            code=record.get("code", str, check=_code_check),
            omschrijving=record.get("omschrijving", str, check=_not_empty),
            active=record.get("active", bool, True),
            link=record.get("link", str, None, _link_template_check),
        )
        record.finish()
        if bericht_type.code in found:
            raise ConfigError(file, f"{record.name}.code", f"{bericht_type.code} is listed twice")
        found[bericht_type.code] = bericht_type
    return tuple(found.values())


def _organisation_name(index: int, table: object) -> str:
    """How an error names an [[organisation]] table: counted from 1 as a reader counts the
    tables in the file, with its OIN when it has a valid one."""
    oin = table.get("oin") if isinstance(table, dict) else None
    known = f" ({oin})" if isinstance(oin, str) and _is_oin(oin) else ""
    return f"organisation #{index + 1}{known}"


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
        section = _Section(file, _organisation_name(index, table), table)
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
            bericht_type_records=(records := _bericht_types(file, section)),
            bericht_types=frozenset(t.code for t in records if t.active),
            wus_profile=section.get("wus_profile", str, "none", _one_of(WUS_PROFILES)),
            receipt=section.get("receipt", str, "header", _one_of(RECEIPT_PLACEMENTS)),
            acts_for=section.string_list("acts_for", []),
            require_pdfa=section.get("require_pdfa", bool, False),
        )
        section.finish()
        for oin in org.acts_for:
            if not _is_oin(oin):
                raise ConfigError(
                    file, f"{section.name}.acts_for", f"{oin!r} is not a 20-digit OIN"
                )
        if org.receipt == "wsse" and not org.requires_signature:
            # The receipt is then the answer's WS-Security signature, so there must be one.
            raise ConfigError(
                file,
                f"{section.name}.receipt",
                '"wsse" needs wus_profile "2W-be-S" or "2W-be-SE" (the signed answer is the '
                'receipt); set one of them, or use receipt = "header"',
            )
        if org.oin in by_oin:
            raise ConfigError(file, f"{section.name}.oin", f"{org.oin} is listed twice")
        by_oin[org.oin] = org
        if org.kvk is not None:
            if org.kvk in by_kvk:
                raise ConfigError(file, f"{section.name}.kvk", f"{org.kvk} is listed twice")
            by_kvk[org.kvk] = org
    return Organisations(by_oin=by_oin, by_kvk=by_kvk)


_DATABASE_URL = re.compile(r"(?P<backend>[a-z0-9]+)(\+[a-z0-9_]+)?://(?P<rest>.*)", re.DOTALL)


def _database_url(file: Path, value: str, base_dir: Path) -> str:
    # Read here with the standard library: configuration knows no database library; the
    # store (adapter.store.engine) parses the URL fully when it connects.
    match = _DATABASE_URL.fullmatch(value.strip())
    if match is None:
        raise ConfigError(file, "database.url", f"{value!r} is not a database URL")
    if match["backend"] not in {"sqlite", "postgresql"}:
        raise ConfigError(file, "database.url", "only sqlite and postgresql are supported")
    rest = match["rest"]
    if match["backend"] == "sqlite" and rest.startswith("/") and rest[1:2] not in ("", "/"):
        # sqlite:///relative/path: a relative path would otherwise follow the working
        # directory of whoever starts us. sqlite:////absolute stays as it is.
        path, _, query = rest[1:].partition("?")
        if path != ":memory:":
            absolute = str(base_dir / path)
            return f"{value[: match.start('rest')]}/{absolute}" + (f"?{query}" if query else "")
    return value


def _tariff(file: Path, table: dict[str, Any] | None) -> Mapping[int, Decimal]:
    """`[usage.tariff]`: years as keys, euro per letter as values, kept exactly as written."""
    if table is None:
        return PUBLISHED_TARIFF
    if not table:
        raise ConfigError(file, "usage.tariff", "must give the price of at least one year")
    tariff: dict[int, Decimal] = {}
    for year, price in table.items():
        key = f"usage.tariff.{year}"
        if not (len(year) == 4 and year.isdigit()):
            raise ConfigError(file, key, "must be a year, such as 2022")
        if isinstance(price, bool) or not isinstance(price, int | float):
            raise ConfigError(file, key, f"must be a price in euro, not {price!r}")
        if not math.isfinite(price) or price < 0:
            raise ConfigError(file, key, "must be 0 or more")
        # str() of a TOML float is its shortest form: 0.454, not 0.45400000000000001...
        tariff[int(year)] = Decimal(str(price))
    return dict(sorted(tariff.items()))


def _blob_config(file: Path, blobs: _Section, directory: Path) -> BlobConfig:
    """`[blobs]`: "local" keeps attachments in `ebms.blob_dir`; "s3" needs a bucket."""
    store = blobs.get("store", str, "local", _one_of(BLOB_STORES))
    if store == "local":
        s3_keys = sorted(set(blobs.table) - {"store"})
        if s3_keys:
            raise ConfigError(file, f"blobs.{s3_keys[0]}", 'applies only to store = "s3"')
        return BlobConfig("local", directory)
    endpoint_url = blobs.get("endpoint_url", str, "", lambda v: _http_url_check(v) if v else None)
    access_key_env = blobs.get("access_key_env", str, "") or None
    secret_key_env = blobs.get("secret_key_env", str, "") or None
    if (access_key_env is None) != (secret_key_env is None):
        missing = "secret_key_env" if secret_key_env is None else "access_key_env"
        raise ConfigError(file, f"blobs.{missing}", "name both key variables, or neither")
    config = BlobConfig(
        store=store,
        directory=directory,
        bucket=blobs.get("bucket", str, check=_bucket_check),
        endpoint_url=endpoint_url.rstrip("/") or None,
        region=blobs.get("region", str, "") or None,
        prefix=blobs.get("prefix", str, ""),
        addressing_style=blobs.get("addressing_style", str, "path", _one_of(S3_ADDRESSING)),
        access_key_env=access_key_env,
        secret_key_env=secret_key_env,
        timeout_seconds=float(blobs.get("timeout_seconds", (int, float), 30, _positive)),
    )
    blobs.finish()
    return config


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def _bucket_check(value: str) -> str | None:
    if _BUCKET.fullmatch(value) is None:
        return "must be an S3 bucket name: 3-63 lower-case letters, digits, dots and hyphens"
    return None


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
        handshake_timeout_seconds=server.get(
            "handshake_timeout_seconds", (int, float), 10.0, _positive
        ),
        header_timeout_seconds=server.get("header_timeout_seconds", (int, float), 10.0, _positive),
        body_timeout_seconds=server.get("body_timeout_seconds", (int, float), 10.0, _positive),
        max_connections_per_address=server.get("max_connections_per_address", int, 32, _positive),
        max_connections=server.get("max_connections", int, 1000, _positive),
        max_worker_memory_mib=server.get("max_worker_memory_mib", int, 1024, _not_negative),
    )
    body_bytes_in_flight = server.get("max_body_bytes_in_flight", int, None, _not_negative)
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
        crl_refresh_hours=tls.get("crl_refresh_hours", (int, float), 4.0, _crl_refresh_check),
        crl_urls=tuple(sorted(tls.string_list("crl_urls", []))),
        crl_fetch_timeout_seconds=tls.get(
            "crl_fetch_timeout_seconds", (int, float), 10.0, _positive
        ),
        crl_max_bytes=tls.get("crl_max_bytes", int, 20 * 1024 * 1024, _positive),
    )
    for url in tls_config.crl_urls:
        if problem := _http_url_check(url):
            raise ConfigError(file, "tls.crl_urls", f"{url!r}: {problem}")
    tls.finish()

    receipts = _Section(file, "receipts", top.get("receipts", dict))
    receipt_config = ReceiptConfig(
        certificate=path(receipts, "certificate"),
        private_key=path(receipts, "private_key"),
        algorithm=receipts.get("algorithm", str, "ecdsa-sha256", _one_of(RECEIPT_ALGORITHMS)),
        receiver_oin=receipts.get("receiver_oin", str, "00000004003214345001", _oin_check),
    )
    receipts.finish()

    wss = _Section(file, "wss", top.get("wss", dict, {}))
    wss_certificate = wss.get("certificate", str, "")
    wss_key = wss.get("private_key", str, "")
    if bool(wss_certificate) != bool(wss_key):
        missing = "private_key" if wss_certificate else "certificate"
        raise ConfigError(
            file, f"wss.{missing}", "give both certificate and private_key, or neither"
        )
    wss_config = WssConfig(
        certificate=base_dir / wss_certificate if wss_certificate else tls_config.certificate,
        private_key=base_dir / wss_key if wss_key else tls_config.private_key,
    )
    wss.finish()

    limits = _Section(file, "limits", top.get("limits", dict, {}))
    max_ebms_message_bytes = limits.get("max_ebms_message_bytes", int, 100 * 1024 * 1024, _positive)
    limits_config = Limits(
        max_request_bytes=limits.get("max_request_bytes", int, 4 * 1024 * 1024, _positive),
        max_klanten=limits.get("max_klanten", int, 250, _positive),
        max_ebms_message_bytes=max_ebms_message_bytes,
        personal_attachments_bytes=limits.get(
            "personal_attachments_bytes", int, 512_000, _positive
        ),
        general_attachments_bytes=limits.get(
            "general_attachments_bytes", int, 2 * 1024 * 1024, _positive
        ),
        max_xml_attributes=limits.get("max_xml_attributes", int, 64, _positive),
        max_xml_depth=limits.get("max_xml_depth", int, 64, _positive),
        max_xml_elements=limits.get("max_xml_elements", int, 100_000, _positive),
        # Unset, the text limit follows the ebMS message cap: an inline Bijlage of any size
        # that fits in a message then reaches BerichtVerwerk, which refuses only its Bericht.
        max_xml_text_length=limits.get(
            "max_xml_text_length", int, max_ebms_message_bytes, _positive
        ),
        replay_window_hours=limits.get("replay_window_hours", int, 24, _positive),
        wss_clock_skew_seconds=limits.get("wss_clock_skew_seconds", int, 300, _not_negative),
        wss_max_age_seconds=limits.get("wss_max_age_seconds", int, 300, _positive),
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
        purge_margin_days=ebms.get(
            "purge_margin_days", int, 7, lambda v: None if v >= 0 else "must be 0 or more"
        ),
    )
    ebms.finish()
    blobs_config = _blob_config(
        file, _Section(file, "blobs", top.get("blobs", dict, {})), ebms_config.blob_dir
    )

    usage = _Section(file, "usage", top.get("usage", dict, {}))
    if "price_per_unit_cents" in usage.table:
        raise ConfigError(
            file,
            "usage.price_per_unit_cents",
            "replaced by [usage.tariff]: euro per letter by year, e.g. 2022 = 0.32",
        )
    usage_config = UsageConfig(
        free_units=usage.get(
            "free_units", int, 1000, lambda v: None if v >= 0 else "must be 0 or more"
        ),
        tariff=_tariff(file, usage.get("tariff", dict, None)),
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

    citizen = _Section(file, "citizen", top.get("citizen", dict, {}))
    citizen_listen = citizen.get("listen", str, "127.0.0.1:8080", _listen_check)
    citizen_host, _, citizen_port = citizen_listen.rpartition(":")
    citizen_config = CitizenConfig(
        host=citizen_host,
        port=int(citizen_port),
        public_url=citizen.get(
            "public_url", str, f"http://{citizen_listen}", _http_url_check
        ).rstrip("/"),
        dev_login=citizen.get("dev_login", bool, False),
        session_idle_minutes=citizen.get("session_idle_minutes", int, 15, _positive),
        page_size=citizen.get("page_size", int, 20, _positive),
    )
    citizen.finish()

    mail = _Section(file, "mail", top.get("mail", dict, {}))
    mail_ca = mail.get("ca_file", str, "")
    mail_config = MailConfig(
        mode=mail.get("mode", str, "files", _one_of(MAIL_MODES)),
        directory=path(mail, "directory", "var/mail"),
        host=mail.get("host", str, "localhost"),
        port=mail.get("port", int, 25, lambda v: None if 0 < v < 65536 else "must be a port"),
        security=mail.get("security", str, "none", _one_of(MAIL_SECURITY)),
        user=mail.get("user", str, "") or None,
        password_env=mail.get("password_env", str, "") or None,
        from_address=mail.get(
            "from", str, "noreply@localhost", lambda v: None if "@" in v else "is no address"
        ),
        timeout_seconds=float(mail.get("timeout_seconds", (int, float), 30, _positive)),
        ca_file=base_dir / mail_ca if mail_ca else None,
    )
    mail.finish()
    # Checked at load, not in check_files (whose hint is `dk-adapter pki init`): the mail CA
    # is the operator's own file, and a wrong path should stop the start, not fail every run.
    if mail_config.ca_file is not None and not mail_config.ca_file.is_file():
        raise ConfigError(file, "mail.ca_file", f"{mail_config.ca_file} does not exist")

    notifications = _Section(file, "notifications", top.get("notifications", dict, {}))
    notifications_config = NotificationsConfig(
        interval_seconds=float(notifications.get("interval_seconds", (int, float), 60, _positive)),
        reminder_days=notifications.get("reminder_days", int, 21, _positive),
        retry_seconds=notifications.get("retry_seconds", int, 60, _positive),
        retry_max_seconds=notifications.get("retry_max_seconds", int, 3600, _positive),
    )
    notifications.finish()

    files = _Section(file, "files", top.get("files", dict, {}))
    organisations_file = path(files, "organisations", "conf/organisations.toml")
    files.finish()
    top.finish()

    return Config(
        file=file,
        base_dir=base_dir,
        server=replace(
            server_config,
            max_body_bytes_in_flight=limits_config.max_ebms_message_bytes
            if body_bytes_in_flight is None
            else body_bytes_in_flight,
        ),
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
        citizen=citizen_config,
        mail=mail_config,
        notifications=notifications_config,
        blobs=blobs_config,
        wss=wss_config,
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
        ("wss.certificate", config.wss.certificate if config.wss else None),
        ("wss.private_key", config.wss.private_key if config.wss else None),
    ):
        if file is not None and not file.is_file():
            raise ConfigError(
                config.file, key, f"{file} does not exist (run `dk-adapter pki init`)"
            )
