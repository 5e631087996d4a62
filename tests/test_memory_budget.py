"""The per-worker budget of large bodies in flight (`[server] max_body_bytes_in_flight`).

One worker, a budget that one large ebMS message fits in but two do not: while the first is
still arriving, the second waits unread in the connection front and is handled after the first
is done; both are accepted. A small request meanwhile is answered at once: bodies of at most
1 MiB never wait for the budget.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from lxml import etree

from adapter.ebms.message import EB, error_of
from adapter.ebms.mime import build_package
from adapter.kit.sender import batch_request
from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import GEMEENTE, Pki, Server, running_server
from tests.ebms_helpers import MIJNOVERHEID, cpa_id
from tests.soap_helpers import aanvraag, post

BUDGET = 4_000_000  # one message below fits, two do not
HOLD_SECONDS = 3.0  # how long the first message's last bytes are held back
SUBSCRIBED = "999993653"


def _one_worker_with_a_budget(directory: Path) -> None:
    config = directory / "conf" / "adapter.toml"
    text = config.read_text(encoding="utf-8").replace("workers = 2\n", "workers = 1\n", 1)
    config.write_text(
        text.replace("[server]\n", f"[server]\nmax_body_bytes_in_flight = {BUDGET}\n", 1),
        encoding="utf-8",
    )


@pytest.fixture(scope="module")
def budgeted(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("budget")
    with running_server(pki, database_url, directory, _one_worker_with_a_budget) as running:
        yield running


def _message() -> tuple[str, str, bytes]:
    """(MessageId, Content-Type, body) of a batch of 100 Berichten with two 10 KB PDFs each."""
    pdf = minimal_pdf(10_000)
    payload = batch_xml([{"bijlagen": [(pdf, "a"), (pdf, "b")]} for _ in range(100)])
    message_id, soap = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    content_type, body = build_package(soap, [("batch@test", "text/xml; charset=UTF-8", payload)])
    return message_id, content_type, body


def _acknowledged(message_id: str, status: int, content: bytes) -> bool:
    document = etree.fromstring(content)
    ref = document.findtext(f".//{{{EB}}}Acknowledgment/{{{EB}}}RefToMessageId")
    return status == 200 and error_of(document) is None and ref == message_id


def _head(server: Server, content_type: str, length: int) -> bytes:
    return (
        f"POST /berichtenbox/ebms HTTP/1.1\r\nHost: {server.url.split('//')[1]}\r\n"
        f'Content-Type: {content_type}\r\nSOAPAction: "ebXML"\r\nContent-Length: {length}\r\n\r\n'
    ).encode()


def test_a_second_large_message_waits_for_the_first_and_a_small_request_does_not(
    budgeted: Server, pki: Pki
) -> None:
    first_id, first_type, first_body = _message()
    second_id, second_type, second_body = _message()
    assert len(first_body) <= BUDGET < len(first_body) + len(second_body)
    assert len(first_body) > 1 << 20  # large: counted against the budget

    context = ssl.create_default_context(cafile=str(pki.root))
    context.load_cert_chain(*pki.clients[GEMEENTE].pair)
    port = int(budgeted.url.rsplit(":", 1)[1])
    first = context.wrap_socket(
        socket.create_connection(("127.0.0.1", port)), server_hostname="127.0.0.1"
    )
    try:
        # The first message arrives but for its last bytes: admitted, its body being read.
        first.sendall(_head(budgeted, first_type, len(first_body)) + first_body[:-1000])
        time.sleep(0.5)

        second: dict[str, object] = {}

        def send_second() -> None:
            response = requests.post(
                f"{budgeted.url}/berichtenbox/ebms",
                data=second_body,
                headers={"Content-Type": second_type, "SOAPAction": '"ebXML"'},
                cert=pki.clients[GEMEENTE].pair,
                verify=str(pki.root),
                timeout=60,
            )
            second.update(at=time.monotonic(), status=response.status_code, body=response.content)

        sender = threading.Thread(target=send_second)
        sender.start()
        time.sleep(0.5)

        started = time.monotonic()
        small = post(
            f"{budgeted.url}/abonnementen",
            aanvraag([SUBSCRIBED], GEMEENTE),
            pki.clients[GEMEENTE].pair,
            pki.root,
        )
        small_seconds = time.monotonic() - started
        assert small.status_code == 200, small.text
        # Answered while the first message is still held back: had it waited for the budget,
        # it would have waited for that message, which ends only after the hold below.
        assert small_seconds < HOLD_SECONDS, f"the small request took {small_seconds:.2f} s"

        time.sleep(max(0.0, HOLD_SECONDS - (time.monotonic() - started)))
        assert "at" not in second, "the second message was handled beside the first"
        released = time.monotonic()
        first.sendall(first_body[-1000:])
        answer = http.client.HTTPResponse(first)  # type: ignore[arg-type]
        answer.begin()
        assert _acknowledged(first_id, answer.status, answer.read())
        first_done = time.monotonic()
    finally:
        first.close()

    sender.join(60)
    assert "at" in second, "the second message got no answer"
    assert _acknowledged(second_id, second["status"], second["body"])  # type: ignore[arg-type]
    assert second["at"] > released  # type: ignore[operator]
    assert first_done > released
