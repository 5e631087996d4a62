"""E-mail notifications and three-week reminders for citizens (SPEC Part D).

Each run queues what became due (letters now visible, reminders for letters still unopened),
then claims the queue and sends at most one e-mail per citizen, naming only the organisations
and the login address: never a subject, text, attachment name or zaak detail. The e-mail is a
service without legal status, so a failure is retried with back-off but never touches intake:
the job reads and writes only the notification queue.

Temporary failures (SMTP 4xx, a lost connection, and TLS trouble: a server certificate not
trusted, STARTTLS not offered, both never answered by sending in clear text) are retried until
48 hours after the letter became visible (the legal norm); then the notification is recorded
as missed and logged.
Permanent failures (5xx) are recorded and not retried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from enum import Enum
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from adapter.config import Config, MailConfig
from adapter.logs import masked_bsn
from adapter.store import citizen as citizen_store
from adapter.store import notifications as queue
from adapter.store.db import Database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

log = logging.getLogger("adapter.jobs.notifications")

LEGAL_LIMIT = timedelta(hours=48)
LEASE = timedelta(minutes=10)  # longer than any SMTP conversation of one run
BATCH = 500  # notifications claimed per round


class Outcome(Enum):
    SENT = "sent"
    TEMPORARY = "temporary"  # try again later
    PERMANENT = "permanent"  # the server refused for good


@dataclass(frozen=True)
class Delivery:
    outcome: Outcome
    detail: str = ""


class MailSender(Protocol):
    def send(self, messages: Sequence[EmailMessage]) -> list[Delivery]:
        """Hand every message over; one Delivery per message, in order."""


class FileSender:
    """The embedded default: each e-mail becomes an .eml file, so development needs no server."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def send(self, messages: Sequence[EmailMessage]) -> list[Delivery]:
        self.directory.mkdir(parents=True, exist_ok=True)
        results = []
        for message in messages:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            target = self.directory / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
            descriptor, temporary = tempfile.mkstemp(dir=self.directory, prefix=".mail-")
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(message.as_bytes())
            os.replace(temporary, target)
            results.append(Delivery(Outcome.SENT, str(target.name)))
        return results


class StartTlsMissing(smtplib.SMTPException):
    """security = "starttls", but the server does not offer it."""


class SmtpSender:
    """Hands messages to a mail server over one connection per run."""

    def __init__(self, config: MailConfig, environ: dict[str, str] | None = None) -> None:
        self.config = config
        self.environ = dict(os.environ) if environ is None else environ

    def _tls_context(self) -> ssl.SSLContext:
        # Verification stays on in every mode: a notification names the citizen's login
        # address, and a server we cannot authenticate could read it or steal our SMTP login.
        ca_file = self.config.ca_file
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        client: smtplib.SMTP
        if config.security == "tls":
            client = smtplib.SMTP_SSL(
                config.host,
                config.port,
                timeout=config.timeout_seconds,
                context=self._tls_context(),
            )
        else:
            client = smtplib.SMTP(config.host, config.port, timeout=config.timeout_seconds)
        try:
            if config.security == "starttls":
                # Never a fall-back to clear text: without STARTTLS neither the password nor
                # a message leaves.
                client.ehlo_or_helo_if_needed()
                if not client.has_extn("starttls"):
                    raise StartTlsMissing(f"{config.host} offers no STARTTLS")
                client.starttls(context=self._tls_context())
            if config.user:
                password = self.environ.get(config.password_env or "", "")
                client.login(config.user, password)
        except BaseException:
            client.close()  # no QUIT: after a failed handshake the stream is unusable
            raise
        return client

    def send(self, messages: Sequence[EmailMessage]) -> list[Delivery]:
        if not messages:
            return []
        try:
            client = self._connect()
        except ssl.SSLCertVerificationError as exc:
            # Our setup or the server's certificate, not the recipient: retried like any
            # refusal below, so that fixing `mail.ca_file` (or the server) loses nothing.
            reason = f"TLS: certificate of {self.config.host} rejected: {exc.verify_message}"
            return [Delivery(Outcome.TEMPORARY, reason)] * len(messages)
        except StartTlsMissing as exc:
            reason = f"TLS: {exc}; not sent in clear text"
            return [Delivery(Outcome.TEMPORARY, reason)] * len(messages)
        except (OSError, smtplib.SMTPException) as exc:
            # Refusals before any message (greeting, STARTTLS, login) concern our setup or the
            # server, not the recipient: retry, so fixing the configuration loses nothing.
            return [Delivery(Outcome.TEMPORARY, f"{type(exc).__name__}: {exc}")] * len(messages)
        results: list[Delivery] = []
        try:
            for message in messages:
                delivery, connected = self._send_one(client, message)
                results.append(delivery)
                if not connected:
                    break  # the rest are tried again next time, on a new connection
        finally:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                client.quit()
        results += [Delivery(Outcome.TEMPORARY, "connection lost")] * (len(messages) - len(results))
        return results

    @staticmethod
    def _send_one(client: smtplib.SMTP, message: EmailMessage) -> tuple[Delivery, bool]:
        """The delivery, and whether the connection can carry the next message."""
        try:
            refused = client.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()))
            return _refused(code, reason), True
        except smtplib.SMTPResponseException as exc:
            return _refused(exc.smtp_code, exc.smtp_error), True
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            return Delivery(Outcome.TEMPORARY, f"connection: {type(exc).__name__}: {exc}"), False
        if refused:
            code, reason = next(iter(refused.values()))
            return _refused(code, reason), True
        return Delivery(Outcome.SENT), True


def _refused(code: int, reason: bytes | str) -> Delivery:
    text = reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)
    outcome = Outcome.PERMANENT if 500 <= code < 600 else Outcome.TEMPORARY
    return Delivery(outcome, f"{code} {text}")


def mail_sender(config: Config) -> MailSender:
    if config.mail.mode == "smtp":
        return SmtpSender(config.mail)
    return FileSender(config.mail.directory)


def _names(names: Iterable[str]) -> str:
    ordered = sorted(set(names))
    if len(ordered) <= 1:
        return "".join(ordered)
    return ", ".join(ordered[:-1]) + " en " + ordered[-1]


def compose(
    to: str,
    letters_from: Iterable[str],
    zaken_from: Iterable[str],
    reminders_from: Iterable[str],
    login_url: str,
    from_address: str,
    now: datetime,
) -> EmailMessage:
    """The one e-mail of a run for a citizen. Organisation names only, by design."""
    letters, zaken, reminders = _names(letters_from), _names(zaken_from), _names(reminders_from)
    lines = ["Beste lezer,", ""]
    if letters:
        lines.append(f"U heeft nieuwe post van {letters} in uw Berichtenbox.")
    if zaken:
        lines.append(f"Er is nieuws over uw lopende zaken bij {zaken}.")
    if reminders:
        lines.append(
            f"U heeft post van {reminders} die u nog niet heeft geopend. "
            "Deze herinnering krijgt u één keer."
        )
    lines += [
        "",
        f"Log in om het te bekijken: {login_url}",
        "",
        "Dit is een automatisch bericht van MijnOverheid; u kunt het niet beantwoorden.",
        "Aan deze e-mail kunt u geen rechten ontlenen. Of u een e-mail of herinnering",
        "wilt ontvangen, stelt u in bij Instellingen.",
    ]
    message = EmailMessage()
    if letters:
        message["Subject"] = "U heeft nieuwe post in MijnOverheid"
    elif zaken:
        message["Subject"] = "Nieuws over uw lopende zaken in MijnOverheid"
    else:
        message["Subject"] = "Herinnering: ongeopende post in MijnOverheid"
    message["From"] = from_address
    message["To"] = to
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=from_address.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
    message.set_content("\n".join(lines) + "\n")
    return message


@dataclass(frozen=True)
class RunReport:
    queued: int
    sent: int  # e-mails handed to the mail server
    skipped: int
    retried: int
    failed: int
    missed: int


class NotificationJob:
    """One run: queue, claim, send, record. `clock` is the scheduler's (tests move it)."""

    def __init__(
        self,
        database: Database,
        config: Config,
        sender: MailSender | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.database = database
        self.config = config
        self.sender = sender if sender is not None else mail_sender(config)
        self.clock = clock

    def _organisation(self, oin: str | None) -> str:
        found = self.config.organisations.by_oin.get(oin or "")
        return found.name if found is not None else "een overheidsorganisatie"

    def _backoff(self, attempts: int) -> timedelta:
        settings = self.config.notifications
        seconds = min(settings.retry_seconds * 2 ** max(attempts, 0), settings.retry_max_seconds)
        return timedelta(seconds=seconds)

    def run(self) -> RunReport:
        now = self.clock()
        with self.database.transaction() as session:
            queued = queue.queue_new_letters(session, now)
            queued += queue.queue_reminders(session, now, self.config.notifications.reminder_days)
        totals = {"sent": 0, "skipped": 0, "retried": 0, "failed": 0, "missed": 0}
        while True:
            with self.database.transaction() as session:
                claimed = queue.claim_due(session, now, LEASE, BATCH)
            if not claimed:
                break
            for key, value in self._deliver(claimed, now).items():
                totals[key] += value
            if len(claimed) < BATCH:
                break
        report = RunReport(queued=queued, **totals)
        if any(totals.values()):
            log.info(
                "notifications: %d e-mails sent, %d skipped, %d to retry, %d failed, %d missed",
                report.sent,
                report.skipped,
                report.retried,
                report.failed,
                report.missed,
            )
        return report

    def _deliver(self, claimed: list[queue.Claimed], now: datetime) -> dict[str, int]:
        counts = {"sent": 0, "skipped": 0, "retried": 0, "failed": 0, "missed": 0}
        skipped: list[int] = []
        outgoing: list[tuple[str, list[queue.Claimed], EmailMessage]] = []
        for bsn, group in groupby(claimed, key=lambda item: item.bsn):
            items = list(group)
            wanted = [
                item
                for item in items
                if item.email
                and item.active
                and item.still_relevant
                and (item.kind != queue.KIND_REMINDER or item.reminders)
            ]
            # By id: `item not in wanted` compared dataclasses pairwise, quadratic in the
            # letters of one citizen (a batch for one BSN made it the scheduler's main cost).
            sending = {item.id for item in wanted}
            skipped += [item.id for item in items if item.id not in sending]
            if not wanted:
                continue
            by_kind: dict[str, list[str]] = {}
            for item in wanted:
                by_kind.setdefault(item.kind, []).append(self._organisation(item.organisation_oin))
            message = compose(
                to=str(wanted[0].email),
                letters_from=by_kind.get(queue.KIND_BERICHT, []),
                zaken_from=by_kind.get(queue.KIND_ZAAK_STATUS, []),
                reminders_from=by_kind.get(queue.KIND_REMINDER, []),
                login_url=self.config.citizen.public_url + "/",
                from_address=self.config.mail.from_address,
                now=now,
            )
            outgoing.append((bsn, wanted, message))
        deliveries = self.sender.send([message for *_, message in outgoing])
        handed_over = self.clock()
        with self.database.transaction() as session:
            queue.mark(session, skipped, queue.SKIPPED)
            counts["skipped"] = len(skipped)
            for (bsn, items, _message), delivery in zip(outgoing, deliveries, strict=True):
                ids = [item.id for item in items]
                if delivery.outcome is Outcome.SENT:
                    queue.mark(session, ids, queue.SENT, sent_at=handed_over, count_attempt=True)
                    counts["sent"] += 1
                    late = [i for i in items if handed_over - i.visible_since > LEGAL_LIMIT]
                    if late:
                        log.warning(
                            "notification for %s sent after the 48-hour limit (%d items)",
                            masked_bsn(bsn),
                            len(late),
                        )
                elif delivery.outcome is Outcome.PERMANENT:
                    queue.mark(
                        session, ids, queue.FAILED, error=delivery.detail, count_attempt=True
                    )
                    counts["failed"] += 1
                    log.warning(
                        "notification for %s refused by the mail server: %s",
                        masked_bsn(bsn),
                        delivery.detail,
                    )
                else:
                    self._retry_or_miss(session, bsn, items, delivery, now, counts)
        return counts

    def _retry_or_miss(
        self,
        session: Session,
        bsn: str,
        items: list[queue.Claimed],
        delivery: Delivery,
        now: datetime,
        counts: dict[str, int],
    ) -> None:
        attempts = max(item.attempts for item in items)
        next_at = now + self._backoff(attempts)
        expired = [i.id for i in items if next_at - i.visible_since > LEGAL_LIMIT]
        again = [i.id for i in items if i.id not in expired]
        queue.mark(session, expired, queue.MISSED, error=delivery.detail, count_attempt=True)
        queue.mark(
            session,
            again,
            queue.PENDING,
            error=delivery.detail,
            next_attempt_at=next_at,
            count_attempt=True,
        )
        if expired:
            counts["missed"] += 1
            log.error(
                "notification for %s missed the 48-hour limit: %s", masked_bsn(bsn), delivery.detail
            )
        if again:
            counts["retried"] += 1
            log.warning(
                "notification for %s not delivered, retry at %s: %s",
                masked_bsn(bsn),
                next_at.isoformat(timespec="seconds"),
                delivery.detail,
            )


def expire_citizen_sessions(database: Database, config: Config, now: datetime) -> int:
    """Remove citizen sessions idle longer than allowed (they are refused anyway; this tidies)."""
    idle = timedelta(minutes=config.citizen.session_idle_minutes)
    with database.transaction() as session:
        return citizen_store.purge_sessions(session, now - idle)
