"""Authorisation and routing on the generic ebMS endpoint, over real mTLS on both databases.

The organisation's `services` grant in organisations.toml is checked for ebMS as for WUS: an
organisation with a valid CPA but without the BerichtVerwerk grant gets a MessageError
SecurityFailure with a signed refusal receipt, and nothing else is stored. An Action that the
CPA allows but that no service descriptor serves is refused with NotSupported.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from lxml import etree

from adapter.ebms.message import error_of
from adapter.kit.sender import batch_request
from adapter.receipts import verify
from tests.abonnement_samples import aanvraag_message, aanvraag_xml, post_aanvraag
from tests.berichtverwerk_samples import batch_xml
from tests.conftest import GEMEENTE, STRIKT, Pki, Server, running_server
from tests.ebms_helpers import BUSINESS_TABLES, MIJNOVERHEID, cpa_id, send
from tests.soap_helpers import verify_with_libxmlsec

# Tables a refused message must leave untouched: business rows, duplicate elimination, outbox.
UNTOUCHED = (*BUSINESS_TABLES, "ebms_messages", "outbox")
# An Action name no descriptor serves (GLOBE-R-A-Request is AbonnementAanvraag's now).
EXTRA_ACTION = "GLOBE-R-X-Request"


def _ungrant_berichtverwerk(organisations: Path, oin: str) -> None:
    """Gemeente Strikt keeps its CPA but loses the BerichtVerwerk grant."""
    text = organisations.read_text(encoding="utf-8")
    block = re.compile(rf'(oin = "{oin}"[^\[]*?services = \[)([^\]]*)\]', re.DOTALL)
    changed, count = block.subn(
        lambda m: m.group(1) + m.group(2).replace('"BerichtVerwerk", ', "") + "]", text
    )
    assert count == 1 and "BerichtVerwerk" not in block.search(changed).group(2)  # type: ignore[union-attr]
    organisations.write_text(changed, encoding="utf-8")


def _allow_extra_action(cpa: Path) -> None:
    """Gemeente Voorbeeldstad's CPA also allows an Action no descriptor of ours serves."""
    text = cpa.read_text(encoding="utf-8")
    for side, other, where in (("SR", "SP", "</tp:CanSend>"), ("SP", "SR", "</tp:CanReceive>")):
        this_id = f"{side}_{EXTRA_ACTION}_{'S' if side == 'SR' else 'R'}"
        other_id = f"{other}_{EXTRA_ACTION}_{'R' if side == 'SR' else 'S'}"
        element = "CanSend" if side == "SR" else "CanReceive"
        binding = (
            f'<tp:{element}><tp:ThisPartyActionBinding tp:id="{this_id}" '
            f'tp:action="{EXTRA_ACTION}" tp:packageId="BerichtPackage">'
            f"<tp:ChannelId>{side}_RM_Channel</tp:ChannelId></tp:ThisPartyActionBinding>"
            f"<tp:OtherPartyActionBinding>{other_id}</tp:OtherPartyActionBinding></tp:{element}>"
        )
        # After the first CanSend of the SR role, and the first CanReceive of the SP role.
        anchor = text.index(f'tp:Role tp:name="{side}"')
        position = text.index(where, anchor) + len(where)
        text = text[:position] + binding + text[position:]
    cpa.write_text(text, encoding="utf-8")


def _prepare(directory: Path) -> None:
    _ungrant_berichtverwerk(directory / "conf" / "organisations.toml", STRIKT)
    cpa = directory / "cpa" / f"{cpa_id(GEMEENTE)}.xml"
    _allow_extra_action(cpa)
    checked = subprocess.run(
        [sys.executable, "-m", "adapter.cli", "cpa", "check", str(cpa)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture(scope="module")
def server(
    pki: Pki, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """A server on which Gemeente Strikt lacks the BerichtVerwerk grant (its CPA stays)."""
    directory = tmp_path_factory.mktemp("grants")
    with running_server(pki, database_url, directory, _prepare) as running:
        yield running


def test_an_organisation_without_the_berichtverwerk_grant_gets_security_failure(
    server: Server, pki: Pki
) -> None:
    before = server.counts(*UNTOUCHED)
    refusals = server.count("receipts", "outcome = 'Geweigerd'")
    sent = send(server, pki, batch_xml([{}], leverancier=STRIKT), oin=STRIKT)
    assert sent.response.status_code == 200
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "SecurityFailure", error
    assert "niet aangesloten op BerichtVerwerk" in error[1]
    verify_with_libxmlsec(sent.document, pki.root)
    receipt = verify(sent.document, pki.root).receipt
    assert not receipt.outcome.accepted and receipt.outcome.code == "SecurityFailure"
    assert receipt.service == "BerichtVerwerk" and receipt.sender_oin == STRIKT
    assert server.counts(*UNTOUCHED) == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == refusals + 1


def test_an_abonnement_aanvraag_without_the_grant_gets_security_failure(
    server: Server, pki: Pki
) -> None:
    # AbonnementAanvraag is an Action of the Berichtenbox service: its grant is BerichtVerwerk.
    before = server.counts(*UNTOUCHED)
    refusals = server.count("receipts", "outcome = 'Geweigerd'")
    response = post_aanvraag(
        f"{server.url}/berichtenbox/ebms",
        pki.clients[STRIKT].pair,
        pki.root,
        aanvraag_xml(STRIKT, bsns=["999993653"]),
        aanvraag_message(STRIKT, datetime.now(UTC)),
    )
    assert response.status_code == 200
    document = etree.fromstring(response.content)
    error = error_of(document)
    assert error is not None and error[0] == "SecurityFailure", error
    assert "niet aangesloten op BerichtVerwerk" in error[1]
    verify_with_libxmlsec(document, pki.root)
    receipt = verify(document, pki.root).receipt
    assert receipt.operation == "GLOBE-R-A-Request" and receipt.outcome.code == "SecurityFailure"
    assert server.counts(*UNTOUCHED) == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == refusals + 1


def test_a_granted_organisation_is_still_served(server: Server, pki: Pki) -> None:
    sent = send(server, pki, batch_xml([{}]))
    assert sent.document is not None and error_of(sent.document) is None
    assert set(sent.codes.values()) == {"Verwerkt"}


def test_an_action_the_cpa_allows_but_no_service_serves_gets_not_supported(
    server: Server, pki: Pki
) -> None:
    before = server.counts(*UNTOUCHED)
    message = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    edited = (message[0], message[1].replace(b"GLOBE-R-BV-Request", EXTRA_ACTION.encode()))
    assert edited[1] != message[1]
    sent = send(server, pki, batch_xml([{}]), message_id=edited)
    assert sent.document is not None
    error = error_of(sent.document)
    assert error is not None and error[0] == "NotSupported", error
    assert EXTRA_ACTION in error[1]
    verify_with_libxmlsec(sent.document, pki.root)
    assert server.counts(*UNTOUCHED) == before
