"""Notifications and reminders, delivered to a real SMTP server (aiosmtpd) on loopback.

Time moves through the job's clock, never by sleeping. Each test gets a database of its own,
once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
import email
import email.policy
import ipaddress
import logging
import os
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from adapter.config import Config, ConfigError, load_config
from adapter.jobs.notifications import FileSender, NotificationJob, SmtpSender, compose
from adapter.logs import masked_bsn
from adapter.pki.devca import load_hierarchy, new_hierarchy
from adapter.store.db import Database
from adapter.store.models import Bericht, CitizenSettings, Notification
from tests.conftest import BELASTINGDIENST, ROOT, Pki, free_port, postgres_schema, write_config
from tests.test_citizen_support import (
    ACTIVE,
    INACTIVE,
    NO_EMAIL,
    SECOND,
    World,
    make_world,
    write_citizen_config,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass
class Inbox:
    """What the SMTP server received; `refuse` makes it answer DATA with that reply once each."""

    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.refuse:
                return self.refuse.pop(0)
            parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
            self.messages.append(parsed)  # type: ignore[arg-type]
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adapter.db'}"
        return
    with postgres_schema("notif") as url:
        yield url


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def setup(
    tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]
) -> Iterator[tuple[World, NotificationJob, Inbox, Clock]]:
    inbox, port = smtp
    with inbox.lock:
        inbox.messages.clear()
        inbox.envelopes.clear()
        inbox.refuse.clear()
    world = make_world(tmp_path, database_url, smtp_port=port)
    clock = Clock()
    job = NotificationJob(world.database, world.config, clock=clock)
    try:
        yield world, job, inbox, clock
    finally:
        world.database.dispose()


def body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def test_a_visible_letter_is_announced_by_organisation_and_login_link_only(setup: Any) -> None:
    world, job, inbox, _clock = setup
    world.letter(
        ACTIVE,
        T0 - timedelta(minutes=1),
        onderwerp="Geheim onderwerp",
        tekst="Geheime inhoud",
        pdfs=[("Geheime bijlage", b"%PDF-1.4 x")],
    )

    report = job.run()

    assert report.sent == 1
    [message] = inbox.to("burger.een@example.nl")
    text = body(message)
    assert "Gemeente Voorbeeldstad" in text
    assert "http://127.0.0.1:8080/" in text
    everything = message.as_string()
    for secret in ("Geheim onderwerp", "Geheime inhoud", "Geheime bijlage", ACTIVE):
        assert secret not in everything
    assert message["Subject"] == "U heeft nieuwe post in MijnOverheid"
    assert message["From"] == "noreply@mijnoverheid.test"
    with world.database.transaction() as session:
        [row] = session.scalars(select(Notification).where(Notification.bsn == ACTIVE))
        assert (row.status, row.sent_at) == ("sent", T0)


def test_several_letters_in_one_run_make_one_email_naming_each_organisation(setup: Any) -> None:
    world, job, inbox, _clock = setup
    for oin in (BELASTINGDIENST, "00000099000000002000", "00000099000000002000"):
        world.letter(ACTIVE, T0 - timedelta(minutes=5), oin=oin)

    job.run()

    [message] = inbox.to("burger.een@example.nl")
    assert "Belastingdienst (test) en Gemeente Voorbeeldstad" in body(message)


def test_a_new_zaak_status_is_announced_without_zaak_details(setup: Any) -> None:
    world, job, inbox, _clock = setup
    world.zaak_status(ACTIVE, T0, omschrijving="Kapvergunning eik", status="Besluit genomen")

    job.run()

    [message] = inbox.to("burger.een@example.nl")
    assert "lopende zaken bij Gemeente Voorbeeldstad" in body(message)
    assert message["Subject"] == "Nieuws over uw lopende zaken in MijnOverheid"
    for detail in ("Kapvergunning", "Besluit genomen", "Dorpsstraat"):
        assert detail not in message.as_string()


def test_a_letter_and_a_zaak_status_for_one_citizen_share_one_email(setup: Any) -> None:
    world, job, inbox, _clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    world.zaak_status(ACTIVE, T0)

    job.run()

    [message] = inbox.to("burger.een@example.nl")
    assert "nieuwe post van Gemeente Voorbeeldstad" in body(message)
    assert "lopende zaken bij Gemeente Voorbeeldstad" in body(message)


def test_no_email_without_address_for_inactive_accounts_or_letters_still_ahead(
    setup: Any,
) -> None:
    world, job, inbox, clock = setup
    world.letter(NO_EMAIL, T0 - timedelta(minutes=1))
    world.letter(INACTIVE, T0 - timedelta(minutes=1), oin=BELASTINGDIENST)
    world.letter(ACTIVE, T0 + timedelta(hours=2))  # PublicatieDatum still ahead

    report = job.run()

    assert inbox.messages == []
    assert report.skipped == 2
    clock.advance(hours=2)
    job.run()
    assert len(inbox.to("burger.een@example.nl")) == 1


def test_a_second_run_sends_nothing_again(setup: Any) -> None:
    world, job, inbox, clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    job.run()
    clock.advance(minutes=1)
    job.run()
    assert len(inbox.messages) == 1


def test_a_reminder_follows_after_21_days_once_for_an_unopened_letter(setup: Any) -> None:
    world, job, inbox, clock = setup
    unopened = world.letter(ACTIVE, T0 - timedelta(minutes=1))
    opened = world.letter(ACTIVE, T0 - timedelta(minutes=1), oin=BELASTINGDIENST)
    job.run()
    with world.database.transaction() as session:
        session.get_one(Bericht, opened).opened_at = T0
    inbox.messages.clear()

    clock.advance(days=20, hours=23)
    job.run()
    assert inbox.messages == []

    clock.advance(hours=2)
    job.run()
    [reminder] = inbox.to("burger.een@example.nl")
    assert reminder["Subject"] == "Herinnering: ongeopende post in MijnOverheid"
    assert "post van Gemeente Voorbeeldstad die u nog niet heeft geopend" in body(reminder)
    assert "Belastingdienst" not in body(reminder)

    clock.advance(days=3)
    job.run()
    assert len(inbox.messages) == 1
    with world.database.transaction() as session:
        kinds = session.scalars(
            select(Notification.kind).where(Notification.bericht_id == unopened)
        ).all()
    assert sorted(kinds) == ["bericht", "herinnering"]


def test_no_reminder_when_the_citizen_turned_reminders_off(setup: Any) -> None:
    world, job, inbox, clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    with world.database.transaction() as session:
        session.add(CitizenSettings(bsn=ACTIVE, reminders=False, updated_at=T0))
    job.run()
    clock.advance(days=22)
    job.run()
    assert [m["Subject"] for m in inbox.messages] == ["U heeft nieuwe post in MijnOverheid"]


def test_a_letter_opened_after_the_reminder_was_queued_gets_none(setup: Any) -> None:
    world, job, inbox, clock = setup
    letter = world.letter(ACTIVE, T0 - timedelta(days=21, minutes=1))
    # Queue only (the mail server refuses once), then the citizen opens the letter.
    inbox.refuse.append("451 4.3.0 try again later")
    job.run()
    with world.database.transaction() as session:
        session.get_one(Bericht, letter).opened_at = T0
    clock.advance(hours=1)
    job.run()
    # Visible three weeks ago, the letter is past the new-post window: only the reminder was
    # queued, and it is dropped now that the letter was opened.
    assert inbox.messages == []
    with world.database.transaction() as session:
        [row] = session.scalars(select(Notification).where(Notification.bericht_id == letter))
        assert (row.kind, row.status) == ("herinnering", "skipped")


def test_a_temporary_failure_is_retried_after_the_back_off(setup: Any) -> None:
    world, job, inbox, clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    inbox.refuse.append("451 4.3.0 mailbox busy")

    first = job.run()
    assert (first.sent, first.retried) == (0, 1)
    clock.advance(seconds=30)  # before the first back-off (60 s) ends
    assert job.run().sent == 0
    clock.advance(seconds=31)
    assert job.run().sent == 1
    assert len(inbox.messages) == 1
    with world.database.transaction() as session:
        [row] = session.scalars(select(Notification).where(Notification.bsn == ACTIVE))
        assert (row.status, row.attempts, row.sent_at) == ("sent", 2, clock.now)


def test_a_permanent_failure_is_recorded_and_not_retried(setup: Any) -> None:
    world, job, inbox, clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    inbox.refuse.append("550 5.1.1 no such user")

    assert job.run().failed == 1
    clock.advance(hours=1)
    job.run()
    assert inbox.messages == []
    with world.database.transaction() as session:
        [row] = session.scalars(select(Notification).where(Notification.bsn == ACTIVE))
        assert row.status == "failed"
        assert "550" in (row.last_error or "")


def test_an_unreachable_mail_server_never_touches_the_letters(
    tmp_path: Path, database_url: str
) -> None:
    world = make_world(tmp_path, database_url, smtp_port=free_port())  # nobody listens
    clock = Clock()
    letter = world.letter(ACTIVE, T0 - timedelta(minutes=1))
    report = NotificationJob(world.database, world.config, clock=clock).run()
    assert report.retried == 1
    with world.database.transaction() as session:
        stored = session.get_one(Bericht, letter)
        assert (stored.folder, stored.opened_at) == ("postvak", None)
        [row] = session.scalars(select(Notification).where(Notification.bsn == ACTIVE))
        assert row.status == "pending"
    # Past the legal limit of 48 hours the notification is given up and logged as missed.
    clock.advance(hours=49)
    assert NotificationJob(world.database, world.config, clock=clock).run().missed == 1
    world.database.dispose()


def test_two_schedulers_at_once_send_each_notification_exactly_once(setup: Any) -> None:
    world, job, inbox, clock = setup
    for _ in range(5):
        world.letter(ACTIVE, T0 - timedelta(minutes=1))
        world.letter(SECOND, T0 - timedelta(minutes=1), oin=BELASTINGDIENST)
    other_database = Database(world.config.database_url)
    other = NotificationJob(other_database, world.config, clock=clock)
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def run(which: NotificationJob) -> None:
        try:
            start.wait()
            which.run()
        except BaseException as exc:  # reported in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(j,)) for j in (job, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other_database.dispose()
    assert failures == []
    assert sorted(rcpt for _, [rcpt] in inbox.envelopes) == [
        "burger.een@example.nl",
        "burger.twee@example.nl",
    ]
    with world.database.transaction() as session:
        statuses = session.scalars(select(Notification.status)).all()
    assert statuses == ["sent"] * 10


def test_logs_show_the_bsn_masked(setup: Any, caplog: pytest.LogCaptureFixture) -> None:
    world, job, inbox, _clock = setup
    world.letter(ACTIVE, T0 - timedelta(minutes=1))
    inbox.refuse.append("451 later")
    with caplog.at_level(logging.INFO, logger="adapter.jobs.notifications"):
        job.run()
    assert "******653" in caplog.text
    assert ACTIVE not in caplog.text
    assert masked_bsn("999993653") == "******653"


def test_the_embedded_default_writes_eml_files(tmp_path: Path) -> None:
    sender = FileSender(tmp_path / "mail")
    message = compose("a@example.nl", ["Gemeente X"], [], [], "http://x/", "n@example.nl", T0)
    [delivery] = sender.send([message])
    [written] = (tmp_path / "mail").glob("*.eml")
    assert written.name == delivery.detail
    parsed = email.message_from_bytes(written.read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "a@example.nl"
    assert "Gemeente X" in parsed.get_body().get_content()  # type: ignore[union-attr]


def test_smtp_login_uses_the_password_from_the_named_environment_variable(tmp_path: Path) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    from adapter.jobs.notifications import Outcome, SmtpSender

    seen: list[tuple[bytes, bytes]] = []

    def authenticator(
        _server: Any, _session: Any, _envelope: Any, mechanism: str, data: Any
    ) -> Any:
        assert isinstance(data, LoginPassword)
        seen.append((data.login, data.password))
        return AuthResult(success=data.password == b"geheim")

    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=authenticator,
        auth_require_tls=False,  # loopback in a test; production uses starttls or tls
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        world = make_world(tmp_path, "sqlite:///" + str(tmp_path / "a.db"), smtp_port=port)
        mail = world.config.mail.__class__(
            **{**world.config.mail.__dict__, "user": "adapter", "password_env": "DK_SMTP_PASSWORD"}
        )
        message = compose("a@example.nl", ["Gemeente X"], [], [], "http://x/", "n@example.nl", T0)
        [good] = SmtpSender(mail, environ={"DK_SMTP_PASSWORD": "geheim"}).send([message])
        world.database.dispose()
    finally:
        controller.stop()
    assert good.outcome is Outcome.SENT
    assert seen == [(b"adapter", b"geheim")]
    assert len(inbox.messages) == 1


def test_the_scheduler_runs_the_notification_job_at_the_configured_interval(setup: Any) -> None:
    from adapter.admin import Heartbeat
    from adapter.jobs.scheduler import build_scheduler

    world, _job, inbox, _clock = setup
    world.letter(ACTIVE, datetime.now(UTC) - timedelta(minutes=1))
    scheduler, deliverer = build_scheduler(world.config, world.database, Heartbeat(60))
    try:
        job = scheduler.get_job("notifications")
        assert job.trigger.interval == timedelta(seconds=1)  # the test configuration's
        job.func()  # one run, as the scheduler makes it (real time, real SMTP)
    finally:
        deliverer.close()
    assert len(inbox.to("burger.een@example.nl")) == 1
    assert scheduler.get_job("citizen-sessions") is not None


def scheduler_on(pki: Pki, directory: Path, url: str) -> tuple[Config, Database, Any]:
    """A migrated database at `url` and the scheduler `dk-adapter serve` would build for it
    (not started: a test runs its jobs), with the test configuration written in `directory`."""
    from adapter.admin import Heartbeat
    from adapter.jobs.scheduler import build_scheduler

    config = load_config(write_config(directory, pki, url, free_port()), environ={})
    database = Database(url)
    database.create_schema()
    scheduler, deliverer = build_scheduler(config, database, Heartbeat(60))
    deliverer.close()  # no job here delivers the outbox
    return config, database, scheduler


def test_the_scheduler_checkpoints_sqlite_every_second_and_postgresql_never(
    pki: Pki, tmp_path: Path
) -> None:
    with postgres_schema() as postgres_url:
        _, postgresql, scheduler = scheduler_on(pki, tmp_path / "pg", postgres_url)
        postgresql.dispose()
        assert scheduler.get_job("wal-checkpoint") is None
    _, sqlite, scheduler = scheduler_on(pki, tmp_path, f"sqlite:///{tmp_path / 'adapter.db'}")
    try:
        job = scheduler.get_job("wal-checkpoint")
        assert job.trigger.interval == timedelta(seconds=1)
        job.func()  # as the scheduler runs it: the migrations' pages, copied from the WAL
        done = sqlite.checkpoint()
    finally:
        sqlite.dispose()
    assert done is not None and done[0] > 0 and done[1] == done[0]


def test_the_retention_job_removes_unfinished_attachment_writes(pki: Pki, tmp_path: Path) -> None:
    from adapter.store.blobs import UNFINISHED_AFTER_SECONDS

    config, database, scheduler = scheduler_on(
        pki, tmp_path, f"sqlite:///{tmp_path / 'adapter.db'}"
    )
    # What a worker killed while it staged a batch leaves beside the contents.
    left = config.blobs.directory / "ab" / "cd" / ".incoming-x1y2"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"half a PDF")
    long_ago = time.time() - UNFINISHED_AFTER_SECONDS - 1
    os.utime(left, (long_ago, long_ago))
    try:
        scheduler.get_job("job-lock").func()  # this node takes the job lock, as at start
        scheduler.get_job("retention").func()  # as the scheduler runs it
    finally:
        database.dispose()
    assert not left.exists()


# --- TLS: STARTTLS and implicit TLS against servers with certificates from the test PKI ---

PASSWORD_ENV = "DK_SMTP_PASSWORD"


def _tls_version(server: Any) -> str | None:
    """The TLS version the server side of this SMTP session speaks, None in clear text."""
    ssl_object = server.transport.get_extra_info("ssl_object")
    return None if ssl_object is None else str(ssl_object.version())


@dataclass
class Recorder(Inbox):
    """An Inbox that also notes AUTH, MAIL and DATA with the TLS version each arrived under."""

    events: list[tuple[str, str | None]] = field(default_factory=list)

    def authenticate(
        self, server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        with self.lock:
            self.events.append(("AUTH", _tls_version(server)))
        good = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"adapter",
            b"geheim",
        )
        return AuthResult(success=good)

    async def handle_MAIL(
        self, server: Any, _session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.events.append(("MAIL", _tls_version(server)))
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.events.append(("DATA", _tls_version(server)))
        return await super().handle_DATA(server, session, envelope)


@dataclass(frozen=True)
class MailPki:
    ca_file: Path  # the trust anchor the job is configured with
    trusted: ssl.SSLContext  # server side: 127.0.0.1, issued under ca_file
    untrusted: ssl.SSLContext  # server side: 127.0.0.1, from an unrelated hierarchy
    wrong_name: ssl.SSLContext  # server side: issued under ca_file, for another host only


def _server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    # Purpose CLIENT_AUTH: a server context that asks no client certificate.
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate, key)
    return context


@pytest.fixture(scope="module")
def mail_pki(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> MailPki:
    directory = tmp_path_factory.mktemp("mail-pki")
    own = load_hierarchy(pki.directory)
    other = new_hierarchy("Vreemd")
    issued = {
        "untrusted": (
            other.tsp.issue_tls_certificate(
                "Vreemde mailserver", oin=None, ip_addresses=["127.0.0.1"]
            ),
            other.chain_pem(),
        ),
        "wrong-name": (
            own.tsp.issue_tls_certificate(
                "mail.elders.test", oin=None, dns_names=["mail.elders.test"]
            ),
            own.chain_pem(),
        ),
    }
    contexts = {}
    for name, (certificate, chain) in issued.items():
        (directory / f"{name}.pem").write_bytes(certificate.cert_pem() + chain)
        (directory / f"{name}.key").write_bytes(certificate.key_pem())
        contexts[name] = _server_context(directory / f"{name}.pem", directory / f"{name}.key")
    return MailPki(
        ca_file=pki.root,
        trusted=_server_context(pki.files.server, pki.files.server_key),
        untrusted=contexts["untrusted"],
        wrong_name=contexts["wrong-name"],
    )


@contextmanager
def smtp_server(handler: Recorder, **options: Any) -> Iterator[int]:
    """A real aiosmtpd server on loopback for one test; the port it listens on."""
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticate,
        auth_exclude_mechanism=["LOGIN"],
        **options,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@contextmanager
def tls_world(
    directory: Path, database_url: str, port: int, security: str, ca_file: Path
) -> Iterator[World]:
    """The test world with `[mail]` for TLS and a login, read from adapter.toml as in production."""
    config_file = write_citizen_config(directory, database_url, smtp_port=port)
    text = config_file.read_text(encoding="utf-8")
    assert text.count('security = "none"\n') == 1
    mail = (
        f'security = "{security}"\nca_file = "{ca_file}"\n'
        f'user = "adapter"\npassword_env = "{PASSWORD_ENV}"\n'
    )
    config_file.write_text(text.replace('security = "none"\n', mail), encoding="utf-8")
    config = load_config(config_file, environ={})
    assert (config.mail.security, config.mail.ca_file) == (security, ca_file)
    database = Database(config.database_url)
    database.create_schema()
    world = World(config, database)
    world.citizens()
    try:
        yield world
    finally:
        database.dispose()


def only_notification(world: World) -> tuple[str, int, str]:
    """Status, attempts and last error of the one notification of the test citizen."""
    with world.database.transaction() as session:
        [row] = session.scalars(select(Notification).where(Notification.bsn == ACTIVE))
        return row.status, row.attempts, row.last_error or ""


def test_the_test_pki_server_certificate_names_the_loopback_address(pki: Pki) -> None:
    # The TLS tests connect to 127.0.0.1 and rely on this certificate matching that name.
    leaf = x509.load_pem_x509_certificates(pki.files.server.read_bytes())[0]
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_starttls_delivers_and_logs_in_only_after_the_handshake(
    tmp_path: Path, database_url: str, mail_pki: MailPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "geheim")
    recorder = Recorder()
    with (
        smtp_server(recorder, tls_context=mail_pki.trusted, require_starttls=True) as port,
        tls_world(tmp_path, database_url, port, "starttls", mail_pki.ca_file) as world,
    ):
        world.letter(ACTIVE, T0 - timedelta(minutes=1))
        report = NotificationJob(world.database, world.config, clock=Clock()).run()
        assert (report.sent, report.retried) == (1, 0)
        assert only_notification(world)[0] == "sent"
    [message] = recorder.to("burger.een@example.nl")
    assert "Gemeente Voorbeeldstad" in body(message)
    # Every command after the greeting that matters came over TLS; AUTH was the first.
    assert [event for event, _ in recorder.events] == ["AUTH", "MAIL", "DATA"]
    versions = {version for _, version in recorder.events}
    assert len(versions) == 1 and versions <= {"TLSv1.2", "TLSv1.3"}


def test_implicit_tls_delivers_over_tls_from_the_first_byte(
    tmp_path: Path, database_url: str, mail_pki: MailPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "geheim")
    recorder = Recorder()
    # ssl_context (not tls_context): the listening socket itself speaks TLS, as on port 465.
    # aiosmtpd counts only STARTTLS as encryption and would hide AUTH, hence auth_require_tls
    # off; the recorded TLS version below shows that the login did travel encrypted.
    with (
        smtp_server(recorder, ssl_context=mail_pki.trusted, auth_require_tls=False) as port,
        tls_world(tmp_path, database_url, port, "tls", mail_pki.ca_file) as world,
    ):
        world.letter(ACTIVE, T0 - timedelta(minutes=1))
        report = NotificationJob(world.database, world.config, clock=Clock()).run()
        assert report.sent == 1
        assert only_notification(world)[0] == "sent"
    assert len(recorder.to("burger.een@example.nl")) == 1
    assert [event for event, _ in recorder.events] == ["AUTH", "MAIL", "DATA"]
    assert all(version in {"TLSv1.2", "TLSv1.3"} for _, version in recorder.events)


@pytest.mark.parametrize(
    ("security", "certificate", "reason"),
    [
        ("starttls", "untrusted", "unable to get local issuer certificate"),
        ("tls", "untrusted", "unable to get local issuer certificate"),
        ("tls", "wrong-name", "IP address mismatch"),
    ],
)
def test_a_server_certificate_we_cannot_verify_gets_nothing_and_is_retried(
    tmp_path: Path,
    database_url: str,
    mail_pki: MailPki,
    monkeypatch: pytest.MonkeyPatch,
    security: str,
    certificate: str,
    reason: str,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "geheim")
    context = mail_pki.untrusted if certificate == "untrusted" else mail_pki.wrong_name
    options = (
        {"tls_context": context, "require_starttls": True}
        if security == "starttls"
        else {"ssl_context": context, "auth_require_tls": False}
    )
    recorder = Recorder()
    clock = Clock()
    with (
        smtp_server(recorder, **options) as port,
        tls_world(tmp_path, database_url, port, security, mail_pki.ca_file) as world,
    ):
        world.letter(ACTIVE, T0 - timedelta(minutes=1))
        job = NotificationJob(world.database, world.config, clock=clock)
        report = job.run()
        assert (report.sent, report.retried, report.failed) == (0, 1, 0)
        status, attempts, error = only_notification(world)
        # Temporary, as every failure before the first message: fixing mail.ca_file (or the
        # server's certificate) within the legal 48 hours still delivers.
        assert (status, attempts) == ("pending", 1)
        assert error.startswith("TLS: certificate of 127.0.0.1 rejected: ")
        assert reason in error
        # A retry meets the same certificate and again sends nothing.
        clock.advance(seconds=61)
        assert job.run().retried == 1
    assert recorder.events == []  # no login, no envelope: nothing left in clear text
    assert recorder.messages == []


def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    tmp_path: Path, database_url: str, mail_pki: MailPki, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "geheim")
    recorder = Recorder()
    # No tls_context: no STARTTLS in the EHLO answer. AUTH is offered in clear, so a client
    # that fell back to plain text would show up in recorder.events.
    with (
        smtp_server(recorder, auth_require_tls=False) as port,
        tls_world(tmp_path, database_url, port, "starttls", mail_pki.ca_file) as world,
    ):
        world.letter(ACTIVE, T0 - timedelta(minutes=1))
        report = NotificationJob(world.database, world.config, clock=Clock()).run()
        assert (report.sent, report.retried) == (0, 1)
        assert only_notification(world) == (
            "pending",
            1,
            "TLS: 127.0.0.1 offers no STARTTLS; not sent in clear text",
        )
    assert recorder.events == []
    assert recorder.messages == []


def test_the_tls_context_always_verifies_and_needs_tls_1_2(
    tmp_path: Path, mail_pki: MailPki
) -> None:
    config = load_config(
        write_citizen_config(tmp_path, f"sqlite:///{tmp_path / 'a.db'}"), environ={}
    )
    contexts = {}
    for ca_file in (None, mail_pki.ca_file):
        mail = dataclasses.replace(config.mail, mode="smtp", security="tls", ca_file=ca_file)
        contexts[ca_file] = context = SmtpSender(mail, environ={})._tls_context()
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    # With ca_file, that anchor alone is trusted: no system CA comes along.
    root = x509.load_pem_x509_certificate(mail_pki.ca_file.read_bytes())
    assert contexts[mail_pki.ca_file].get_ca_certs(binary_form=True) == [
        root.public_bytes(serialization.Encoding.DER)
    ]


def test_mail_ca_file_is_read_relative_to_base_dir_and_must_exist(tmp_path: Path) -> None:
    config_file = write_citizen_config(tmp_path, "sqlite://")
    text = config_file.read_text(encoding="utf-8")
    assert text.count(f'base_dir = "{ROOT}"') == 1
    text = text.replace(f'base_dir = "{ROOT}"', f'base_dir = "{tmp_path}"')
    config_file.write_text(text, encoding="utf-8")
    assert load_config(config_file, environ={}).mail.ca_file is None  # the system's store

    with_ca = text.replace("[mail]\n", '[mail]\nca_file = "conf/mail-ca.pem"\n')
    config_file.write_text(with_ca, encoding="utf-8")
    with pytest.raises(ConfigError) as missing:
        load_config(config_file, environ={})
    assert missing.value.key == "mail.ca_file"
    assert "mail-ca.pem does not exist" in missing.value.reason

    (tmp_path / "conf" / "mail-ca.pem").write_bytes(b"")
    assert load_config(config_file, environ={}).mail.ca_file == tmp_path / "conf" / "mail-ca.pem"
