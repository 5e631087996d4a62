"""`dk-adapter messages list|show|resend|purge`: the ebMS messages received and sent.

`list` filters by OIN, direction, Action, status and period and prints a table; `show` prints
a message's headers, its receipt and its delivery attempts; `resend` queues a failed outbound
message again; `purge` removes what has outlived its CPA's PersistDuration plus
`ebms.purge_margin_days` (the scheduler does this daily). Receipts and the audit chain are
never removed. The queries are in adapter.store.messages.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from adapter.cli.base import Commands, ConfigLoader, report_database_error
from adapter.errors import AdapterError, StoreUnavailable
from adapter.store.messages import INBOUND, OUTBOUND, STATUSES, MessageFilter, MessageSummary

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from adapter.config import Config
    from adapter.store.db import Database

_DIRECTION = {INBOUND: "in", OUTBOUND: "uit"}


def _moment(value: str) -> datetime:
    """YYYY-MM-DD or an ISO 8601 date and time; without an offset it is UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is geen datum of tijdstip: gebruik bijvoorbeeld 2026-12-01 of "
            "2026-12-01T09:30:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _oin(value: str) -> str:
    if len(value) != 20 or not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is geen OIN van 20 cijfers")
    return value


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _console() -> Console:
    from rich.console import Console

    # Piped into a file or another program, keep whole MessageIds on one line. No markup:
    # stored values (errors, receipts) are printed as they are, brackets and all.
    return Console(width=None if sys.stdout.isatty() else 400, highlight=False, markup=False)


def _database(config_loader: ConfigLoader, args: argparse.Namespace) -> tuple[Config, Database]:
    from adapter.store.db import Database

    config = config_loader(args)
    database = Database(config.database_url)
    database.create_schema()
    return config, database


def _summaries_table(title: str, rows: list[MessageSummary]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("richting", "tijdstip (UTC)", "OIN", "Action", "status", "pogingen"):
        table.add_column(name, no_wrap=True)
    table.add_column("MessageId", no_wrap=True)
    table.add_column("RefToMessageId", no_wrap=True)
    for row in rows:
        table.add_row(
            _DIRECTION[row.direction],
            _when(row.at),
            row.oin,
            row.action,
            row.status,
            str(row.attempts) if row.direction == OUTBOUND else "-",
            row.message_id,
            row.ref_to_message_id or "-",
        )
    return table


def cmd_list(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    _, database = _database(config_loader, args)
    wanted = MessageFilter(
        oin=args.oin,
        direction=args.direction,
        action=args.action,
        status=args.status,
        since=args.since,
        until=args.until,
        limit=args.limit,
    )
    try:
        with database.repositories() as repositories:
            rows = repositories.messages.listing(wanted)
    except StoreUnavailable as exc:
        return report_database_error(exc)
    finally:
        database.dispose()
    console = _console()
    if not rows:
        console.print("geen berichten gevonden")
        return 0
    shown = "laatste" if len(rows) == args.limit else "alle"
    console.print(_summaries_table(f"{len(rows)} berichten ({shown}, nieuwste eerst)", rows))
    return 0


def _header_lines(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """The MessageHeader of a stored outbound message, as label and value."""
    from adapter.ebms.message import read_header
    from adapter.ebms.mime import parse_package
    from adapter.soap.xml import parse_untrusted

    try:
        package = parse_package(content_type, body)
        header = read_header(parse_untrusted(package.soap.body))
    except AdapterError as exc:
        return [("MessageHeader", f"onleesbaar: {exc}")]
    lines = [
        (
            "From/PartyId",
            header.from_party.value + (f" ({header.from_role})" if header.from_role else ""),
        ),
        ("To/PartyId", header.to_party.value + (f" ({header.to_role})" if header.to_role else "")),
        ("CPAId", header.cpa_id),
        ("ConversationId", header.conversation_id),
        ("Service", header.service),
        ("Action", header.action),
        ("MessageId", header.message_id),
        ("Timestamp", _when(header.timestamp)),
        ("RefToMessageId", header.ref_to_message_id or "-"),
    ]
    for cid in header.manifest:
        part = package.attachment(cid)
        lines.append(("payload", f"cid:{cid} {part.content_type}, {len(part.body)} bytes"))
    return lines


def _pairs(title: str, pairs: list[tuple[str, str]]) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_header=False)
    table.add_column(no_wrap=True, style="bold")
    table.add_column(overflow="fold")
    for label, value in pairs:
        table.add_row(label, value)
    return table


def cmd_show(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from rich.table import Table

    from adapter.store.messages import MessageNotFound, Received

    _, database = _database(config_loader, args)
    try:
        with database.repositories() as repositories:
            shown = repositories.messages.show(args.message_id)
    except MessageNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        return report_database_error(exc)
    finally:
        database.dispose()
    console = _console()
    for message in shown:
        summary = message.summary
        if isinstance(message, Received):
            console.print(
                _pairs(
                    f"Ontvangen bericht {summary.message_id}",
                    [
                        ("From/PartyId", summary.oin),
                        ("CPAId", message.cpa_id),
                        ("ConversationId", message.conversation_id),
                        ("Action", summary.action),
                        ("ontvangen (UTC)", _when(summary.at)),
                        ("status", summary.status),
                        (
                            "antwoord op de verbinding",
                            f"{len(message.sync_answer)} bytes (Acknowledgment, mshSignalsOnly)"
                            if message.sync_answer
                            else "geen (asynchroon)",
                        ),
                    ],
                )
            )
            if message.answers:
                console.print(_summaries_table("Hiervoor verzonden", message.answers))
        else:
            console.print(
                _pairs(
                    f"Verzonden bericht {summary.message_id}",
                    [
                        *_header_lines(message.content_type, message.body),
                        ("endpoint", message.endpoint),
                        ("Content-Type", message.content_type),
                        ("grootte", f"{len(message.body)} bytes"),
                        ("in de wachtrij (UTC)", _when(summary.at)),
                        ("status", summary.status),
                        ("pogingen", f"{summary.attempts} van {message.max_attempts}"),
                        ("volgende poging (UTC)", _when(message.next_attempt_at)),
                        ("verloopt (UTC)", _when(message.expires_at)),
                        ("laatste fout", message.last_error or "-"),
                    ],
                )
            )
            attempts = Table(title="Afleverpogingen", title_justify="left")
            for name in ("#", "tijdstip (UTC)", "uitkomst", "fout"):
                attempts.add_column(name)
            for number, attempt in enumerate(message.history, start=1):
                attempts.add_row(
                    str(number), _when(attempt.at), attempt.status, attempt.error or "-"
                )
            console.print(attempts if message.history else "Afleverpogingen: nog geen")
        receipt = message.receipt_xml
        title = "Afleverbevestiging" + (
            "" if isinstance(message, Received) else " (van het verzoek)"
        )
        console.print(f"{title}:", receipt if receipt else "geen", sep="\n", soft_wrap=True)
        console.print()
    return 0


def cmd_resend(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from adapter.store.messages import MessageNotFound, NotResendable

    _, database = _database(config_loader, args)
    try:
        with database.repositories() as repositories:
            summary = repositories.messages.resend(args.message_id, datetime.now(UTC))
    except (MessageNotFound, NotResendable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except StoreUnavailable as exc:
        return report_database_error(exc)
    finally:
        database.dispose()
    print(
        f"{summary.message_id} ({summary.action} naar {summary.oin}) staat weer in de wachtrij; "
        "de scheduler verzendt het bij de volgende ronde"
    )
    return 0


def cmd_purge(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from adapter.ebms.cpa import CpaStore
    from adapter.jobs.retention import purge_messages

    config, database = _database(config_loader, args)
    try:
        received, sent = purge_messages(
            database,
            CpaStore.load(config.ebms.cpa_dir),
            config.receipts.receiver_oin,
            config.ebms.purge_margin_days,
            datetime.now(UTC),
        )
    except StoreUnavailable as exc:
        return report_database_error(exc)
    finally:
        database.dispose()
    print(
        f"{received} ontvangen en {sent} verzonden berichten opgeruimd (PersistDuration van de "
        f"CPA plus {config.ebms.purge_margin_days} dagen); ontvangstbevestigingen en de "
        "auditketen blijven"
    )
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    messages = commands.add_parser("messages", help="ebMS messages received and sent")
    sub = messages.add_subparsers(dest="messages", required=True)

    listing = sub.add_parser("list", help="received and sent messages, newest first")
    listing.add_argument("--oin", type=_oin, help="the other party: sender or receiver")
    listing.add_argument("--direction", choices=(INBOUND, OUTBOUND), help="in: received; out: sent")
    listing.add_argument("--action", help="the MessageHeader Action, e.g. GLOBE-R-BV-Request")
    listing.add_argument(
        "--status", choices=STATUSES, help="received/processed (in) or outbox status"
    )
    listing.add_argument("--since", type=_moment, help="from this moment (UTC unless given)")
    listing.add_argument("--until", type=_moment, help="before this moment")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.set_defaults(func=lambda args: cmd_list(args, config_loader))

    show = sub.add_parser("show", help="headers, receipt and delivery attempts of a message")
    show.add_argument("message_id", help="the ebMS MessageId, as messages list shows it")
    show.set_defaults(func=lambda args: cmd_show(args, config_loader))

    resend = sub.add_parser("resend", help="queue a failed outbound message again")
    resend.add_argument("message_id", help="MessageId of a failed outbound message")
    resend.set_defaults(func=lambda args: cmd_resend(args, config_loader))

    purge = sub.add_parser(
        "purge", help="remove messages past their CPA's PersistDuration plus the margin"
    )
    purge.set_defaults(func=lambda args: cmd_purge(args, config_loader))
