"""`dk-adapter messages list|show|resend|purge` against a running server's messages.

Real messages are made end to end (a BerichtVerwerk batch, its Acknowledgment and result,
over mTLS with a real peer), then the administrator's commands read and change them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from adapter.kit.receiver import Reply
from adapter.kit.sender import batch_request
from tests.berichtverwerk_samples import batch_xml
from tests.conftest import BELASTINGDIENST, GEMEENTE, Pki, Server, run_cli
from tests.ebms_helpers import MIJNOVERHEID, Peer, cpa_id, send
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def peer(server: Server, pki: Pki) -> Iterator[Peer]:
    peer = Peer(server, pki)
    with peer.receiver:
        yield peer


def messages(server: Server, *args: str) -> tuple[int, str, str]:
    done = run_cli("messages", *args, config=server.config, database_url=server.database_url)
    return done.returncode, done.stdout, done.stderr


def rows_of(out: str) -> dict[str, list[str]]:
    """The table's rows by MessageId: the cells of each row."""
    rows = {}
    for line in out.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if len(cells) == 8:
            rows[cells[6]] = cells
    return rows


def listed(out: str, message_id: str, direction: str) -> bool:
    """Is `message_id` a row of its own in the table (not just another row's RefToMessageId)?"""
    row = rows_of(out).get(message_id)
    return row is not None and row[0] == direction


def result_id(server: Server, ref: str, action: str = "GLOBE-R-BV-Result") -> str:
    with server.engine.connect() as conn:
        return str(
            conn.execute(
                text("SELECT message_id FROM outbox WHERE ref_to_message_id = :r AND action = :a"),
                {"r": ref, "a": action},
            ).scalar_one()
        )


@pytest.fixture(scope="module")
def delivered(server: Server, pki: Pki, peer: Peer) -> tuple[str, str]:
    """A batch of Gemeente Voorbeeldstad, received, and its result, delivered."""
    return delivered_batch(server, pki, peer)


def test_list_shows_received_and_sent_messages_newest_first(
    server: Server, delivered: tuple[str, str]
) -> None:
    received, result = delivered
    status, out, err = messages(server, "list")
    assert status == 0, err
    rows = rows_of(out)
    assert rows[received][:1] == ["in"] and rows[result][:1] == ["uit"]
    assert rows[received][3:5] == ["GLOBE-R-BV-Request", "processed"]
    assert rows[result][3:5] == ["GLOBE-R-BV-Result", "delivered"]
    assert rows[result][7] == received  # RefToMessageId
    assert re.search(r"\d+ berichten", out)
    order = [m for m in rows if m in (received, result)]
    assert order == [result, received]  # newest first: the result was queued after receipt


@pytest.mark.parametrize(
    ("args", "received_shown", "result_shown"),
    [
        (["--direction", "in"], True, False),
        (["--direction", "out"], False, True),
        (["--oin", GEMEENTE], True, True),
        (["--oin", BELASTINGDIENST], False, False),
        (["--action", "GLOBE-R-BV-Request"], True, False),
        (["--status", "processed"], True, False),
        (["--status", "delivered"], False, True),
        (["--status", "failed"], False, False),
        (["--since", "2000-01-01", "--until", "2999-01-01"], True, True),
        (["--since", "2999-01-01"], False, False),
    ],
    ids=[
        "in",
        "out",
        "oin",
        "other-oin",
        "action",
        "processed",
        "delivered",
        "failed",
        "period",
        "future",
    ],
)
def test_list_filters(
    server: Server,
    delivered: tuple[str, str],
    args: list[str],
    received_shown: bool,
    result_shown: bool,
) -> None:
    received, result = delivered
    status, out, err = messages(server, "list", *args)
    assert status == 0, err
    shown = (listed(out, received, "in"), listed(out, result, "uit"))
    assert shown == (received_shown, result_shown), out


def test_list_refuses_a_bad_filter_saying_what_is_expected(server: Server) -> None:
    for args, says in (
        (["--oin", "123"], "OIN van 20 cijfers"),
        (["--since", "gisteren"], "2026-12-01"),
        (["--status", "kwijt"], "invalid choice"),
    ):
        status, _, err = messages(server, "list", *args)
        assert status == 2 and says in err, err


def test_show_a_received_message_prints_its_headers_receipt_and_answers(
    server: Server, delivered: tuple[str, str]
) -> None:
    received, result = delivered
    status, out, err = messages(server, "show", received)
    assert status == 0, err
    assert f"Ontvangen bericht {received}" in out
    assert cpa_id(GEMEENTE) in out and "GLOBE-R-BV-Request" in out and "processed" in out
    assert "<Afleverbevestiging" in out and "Signature" in out
    assert result in out  # what was sent for it
    assert "Acknowledgment, mshSignalsOnly" in out


def test_show_a_sent_message_prints_its_header_and_every_delivery_attempt(
    server: Server, delivered: tuple[str, str]
) -> None:
    received, result = delivered
    status, out, err = messages(server, "show", result)
    assert status == 0, err
    assert f"Verzonden bericht {result}" in out
    for value in (MIJNOVERHEID, GEMEENTE, "GLOBE-R-BV-Result", received, "text/xml"):
        assert value in out, value  # From, To, Action, RefToMessageId, the payload's type
    assert "Afleverpogingen" in out
    assert re.search(r"1 .*delivered", out), out
    assert "<Afleverbevestiging" in out  # the receipt of the batch it answers


def test_show_an_unknown_message_says_so(server: Server) -> None:
    status, _, err = messages(server, "show", "nergens@x")
    assert status == 1 and "geen bericht met MessageId nergens@x" in err


def test_a_failed_message_is_resent_and_then_delivered(
    server: Server, pki: Pki, peer: Peer
) -> None:
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    with peer.lock:  # refused outright: 4xx is not retried, the message fails
        peer.outages[message[0]] = [Reply(status=404)]
    send(server, pki, batch_xml([{}]), message_id=message)
    result = result_id(server, message[0])
    where = f"message_id = '{result}'"
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'failed'") == 1)

    status, out, err = messages(server, "resend", result)
    assert status == 0, err
    assert "weer in de wachtrij" in out
    peer.wait_for("GLOBE-R-BV-Result", message[0])
    wait_until(lambda: server.count("outbox", f"{where} AND status = 'delivered'") == 1)
    status, out, _ = messages(server, "show", result)
    assert re.search(r"1 .*failed.*HTTP 404", out) and re.search(r"2 .*delivered", out), out

    status, _, err = messages(server, "resend", result)
    assert status == 1 and "alleen een mislukt (failed) bericht" in err
    status, _, err = messages(server, "resend", "nergens@x")
    assert status == 1 and "geen verzonden bericht" in err


def delivered_batch(server: Server, pki: Pki, peer: Peer) -> tuple[str, str]:
    sent = send(server, pki, batch_xml([{}]))
    peer.wait_for("GLOBE-R-BV-Result", sent.message_id)
    result = result_id(server, sent.message_id)
    wait_until(lambda: server.count("outbox", f"message_id = '{result}' AND status = 'delivered'"))
    return sent.message_id, result


def test_purge_removes_messages_past_persist_duration_but_never_receipts_or_audit(
    server: Server, pki: Pki, peer: Peer
) -> None:
    received, _ = delivered_batch(server, pki, peer)
    fresh, fresh_result = delivered_batch(server, pki, peer)
    old = datetime.now(UTC) - timedelta(days=30)
    with server.engine.begin() as conn:  # the first batch and its result, a month ago
        conn.execute(
            text("UPDATE ebms_messages SET received_at = :t WHERE message_id = :m"),
            {"t": old, "m": received},
        )
        conn.execute(
            text("UPDATE outbox SET created_at = :t, expires_at = :t WHERE ref_to_message_id = :m"),
            {"t": old, "m": received},
        )
    kept = server.counts("receipts", "audit_log")

    status, out, err = messages(server, "purge")
    assert status == 0, err
    assert re.search(r"[1-9]\d* ontvangen en [1-9]\d* verzonden berichten opgeruimd", out), out
    assert server.count("ebms_messages", f"message_id = '{received}'") == 0
    assert server.count("outbox", f"ref_to_message_id = '{received}'") == 0
    assert server.count("outbox_attempts", "outbox_id NOT IN (SELECT id FROM outbox)") == 0
    # The recent ones (60 s PersistDuration in the test CPAs, plus 7 days) stay.
    assert server.count("ebms_messages", f"message_id = '{fresh}'") == 1
    assert server.count("outbox", f"message_id = '{fresh_result}'") == 1
    assert server.counts("receipts", "audit_log") == kept
    verified = run_cli("audit", "verify", config=server.config, database_url=server.database_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status, _, err = messages(server, "show", received)
    assert status == 1 and "al opgeruimd" in err
