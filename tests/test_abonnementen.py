"""ValidateAbonnementen end to end: zeep and raw HTTP over real mTLS, SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import subprocess

import pytest
import requests
from lxml import etree
from zeep import Client
from zeep.plugins import HistoryPlugin

from adapter.berichtenbox.abonnementen import RESPONSE_ACTION, SVC
from adapter.receipts import verify
from adapter.soap.addressing import WSA
from tests import soap_helpers
from tests.conftest import BELASTINGDIENST, GEMEENTE, STRIKT, Pki, Server
from tests.soap_helpers import (
    SOAP,
    aanvraag,
    addressing,
    fault_of,
    post,
    receipt_element,
    receipt_text,
    verify_with_libxmlsec,
)

SUBSCRIBED = "999993653"  # active, opted in for GEMEENTE and STRIKT
NOT_SUBSCRIBED = "999990019"  # active, no opt-ins
INACTIVE_SUBSCRIBED = "999990020"  # opted in for GEMEENTE, account not activated
INACTIVE = "999990032"  # account exists, not activated, no opt-ins
NO_ACCOUNT = "100000009"  # passes the elfproef, has no account


def zeep_client(server: Server, pki: Pki, oin: str) -> tuple[Client, HistoryPlugin]:
    return soap_helpers.zeep_client(
        f"{server.url}/abonnementen?wsdl", pki.clients[oin].pair, pki.root
    )


def ask(
    client: Client, leverancier: str, keys: list[str], type_code: str = "BESLUIT"
) -> list[tuple[str, bool]]:
    result = client.service.ValidateAbonnementen(
        validateAbonnementenAanvraag={
            "berichtleverancierCode": leverancier,
            "berichtTypeCode": type_code,
            "klanten": {"Klant": [{"Key": key, "Rol": "Burger"} for key in keys]},
        }
    )
    return [(abonnement.klant.Key, abonnement.isBerichtSturen) for abonnement in result]


def test_zeep_gets_one_answer_per_klant_in_request_order(server: Server, pki: Pki) -> None:
    client, _ = zeep_client(server, pki, GEMEENTE)
    keys = [NOT_SUBSCRIBED, SUBSCRIBED, INACTIVE_SUBSCRIBED, NO_ACCOUNT, SUBSCRIBED]
    assert ask(client, GEMEENTE, keys) == [
        (NOT_SUBSCRIBED, False),
        (SUBSCRIBED, True),
        (INACTIVE_SUBSCRIBED, False),
        (NO_ACCOUNT, False),
        (SUBSCRIBED, True),
    ]


def test_by_law_organisation_may_send_to_every_existing_account(server: Server, pki: Pki) -> None:
    client, _ = zeep_client(server, pki, BELASTINGDIENST)
    keys = [SUBSCRIBED, NOT_SUBSCRIBED, INACTIVE, NO_ACCOUNT]
    assert ask(client, BELASTINGDIENST, keys, "AANSLAG") == [
        (SUBSCRIBED, True),
        (NOT_SUBSCRIBED, True),
        (INACTIVE, True),
        (NO_ACCOUNT, False),
    ]


def test_receipt_verifies_with_libxmlsec_and_with_our_verifier(server: Server, pki: Pki) -> None:
    client, history = zeep_client(server, pki, GEMEENTE)
    ask(client, GEMEENTE, [SUBSCRIBED])
    response = history.last_received["envelope"]
    verify_with_libxmlsec(response, pki.root)
    verified = verify(response, pki.root)
    request = history.last_sent["envelope"]
    request_body = request.find(f"{{{SOAP}}}Body")
    canonical = etree.tostring(request_body, method="c14n", exclusive=True, with_comments=False)
    receipt = verified.receipt
    assert receipt.body_hash == base64.b64encode(hashlib.sha256(canonical).digest()).decode()
    assert receipt.message_ref == request.findtext(f"{{{SOAP}}}Header/{{{WSA}}}MessageID")
    assert (receipt.sender_oin, receipt.receiver_oin) == (GEMEENTE, "00000004003214345001")
    assert receipt.outcome.accepted and receipt.outcome.code is None
    assert (
        server.count(
            "receipts", f"receipt_id = '{receipt.receipt_id}' AND outcome = 'Geaccepteerd'"
        )
        == 1
    )


def test_answer_to_a_ws_addressing_request_relates_to_its_message_id(
    server: Server, pki: Pki
) -> None:
    client, history = zeep_client(server, pki, STRIKT)
    ask(client, STRIKT, [SUBSCRIBED])
    sent_id = history.last_sent["envelope"].findtext(f"{{{SOAP}}}Header/{{{WSA}}}MessageID")
    header = history.last_received["envelope"].find(f"{{{SOAP}}}Header")
    assert header.findtext(f"{{{WSA}}}RelatesTo") == sent_id
    assert header.findtext(f"{{{WSA}}}Action") == RESPONSE_ACTION
    assert header.findtext(f"{{{WSA}}}MessageID").startswith("urn:uuid:")


def test_request_without_ws_addressing_is_answered_like_the_logius_service(
    server: Server, pki: Pki
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag([SUBSCRIBED], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
        '""',
    )
    assert response.status_code == 200
    document = etree.fromstring(response.content)
    assert document.find(f"{{{SOAP}}}Header/{{{WSA}}}RelatesTo") is None
    assert (
        document.findtext(f".//{{{SVC}}}ValidateAbonnementenResult//{{*}}isBerichtSturen") == "true"
    )
    verify(document, pki.root)


def test_wsdl_is_served_with_the_configured_address_and_its_schemas(
    server: Server, pki: Pki
) -> None:
    cert, root = pki.clients[GEMEENTE].pair, str(pki.root)
    wsdl = requests.get(f"{server.url}/abonnementen?wsdl", cert=cert, verify=root, timeout=10)
    document = etree.fromstring(wsdl.content)
    address = document.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == f"{server.url}/abonnementen"
    location = document.find(".//{http://www.w3.org/2001/XMLSchema}import").get("schemaLocation")
    assert location == f"{server.url}/abonnementen?xsd=BerichtenboxValidatieService.xsd"
    schema = requests.get(location, cert=cert, verify=root, timeout=10)
    assert schema.status_code == 200 and b"ValidateAbonnementenResponse" in schema.content
    other = requests.get(
        f"{server.url}/abonnementen?xsd=../conf/organisations.toml",
        cert=cert,
        verify=root,
        timeout=10,
    )
    assert other.status_code == 404


def test_wsdl_address_ignores_the_host_header(server: Server, pki: Pki) -> None:
    wsdl = requests.get(
        f"{server.url}/abonnementen?wsdl",
        headers={"Host": "evil.example"},
        cert=pki.clients[GEMEENTE].pair,
        verify=str(pki.root),
        timeout=10,
    )
    assert b"evil.example" not in wsdl.content


# --- refusals: exact fault, a stored refusal receipt, nothing else stored ---------------------

BUSINESS_TABLES = ("accounts", "subscriptions")


def refused(
    server: Server,
    pki: Pki,
    body: bytes,
    *,
    oin: str = GEMEENTE,
    soap_action: str | None = None,
) -> tuple[tuple[str, str, str | None], etree._Element]:
    before, receipts = (
        server.counts(*BUSINESS_TABLES),
        server.count("receipts", "outcome = 'Geweigerd'"),
    )
    kwargs = {} if soap_action is None else {"soap_action": soap_action}
    response = post(f"{server.url}/abonnementen", body, pki.clients[oin].pair, pki.root, **kwargs)
    assert response.status_code == 500
    document = etree.fromstring(response.content)
    verify_with_libxmlsec(document, pki.root)
    assert server.counts(*BUSINESS_TABLES) == before
    assert server.count("receipts", "outcome = 'Geweigerd'") == receipts + 1
    return fault_of(response), document


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("251 klanten", "251 klanten; toegestaan is 1 tot en met 250"),
        ("elfproef", "Klant 2: Key is geen geldig BSN (elfproef)"),
        ("other leverancier", "berichtleverancierCode 00000099000000001000 is niet het OIN"),
        ("type not granted", "berichtTypeCode AANSLAG is niet toegekend"),
        # conf/organisations.toml lists HERINNER for the Gemeente with active = false.
        ("type inactive", "berichtTypeCode HERINNER is niet actief"),
    ],
)
def test_invalid_aanvragen_get_an_application_fault(
    server: Server, pki: Pki, case: str, message: str
) -> None:
    body = {
        "251 klanten": aanvraag([SUBSCRIBED] * 251, GEMEENTE),
        "elfproef": aanvraag([SUBSCRIBED, "123456789"], GEMEENTE),
        "other leverancier": aanvraag([SUBSCRIBED], BELASTINGDIENST),
        "type not granted": aanvraag([SUBSCRIBED], GEMEENTE, "AANSLAG"),
        "type inactive": aanvraag([SUBSCRIBED], GEMEENTE, "HERINNER"),
    }[case]
    (code, text, detail), document = refused(server, pki, body)
    assert (code, text) == ("s:Client", "Aanvraag ongeldig")
    assert detail is not None and detail.startswith(message)
    assert receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Code") == "ApplicationFault"


def test_250_klanten_is_the_largest_accepted_request(server: Server, pki: Pki) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag([SUBSCRIBED] * 250, GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
    )
    assert response.status_code == 200
    assert response.content.count(b"isBerichtSturen>true<") == 250


@pytest.mark.parametrize(
    ("headers", "faultstring"),
    [
        ("", "0005 WS-Addressing header To ontbreekt"),
        (addressing(to="", message_id="urn:uuid:x"), "0005 WS-Addressing header To ontbreekt"),
        (
            addressing(to="https://127.0.0.1/abonnementen", action=""),
            "0006 WS-Addressing header Action ontbreekt",
        ),
        (
            addressing(to="https://127.0.0.1/abonnementen", message_id=""),
            "0007 WS-Addressing header MessageID ontbreekt",
        ),
        (
            addressing(to="https://127.0.0.1/abonnementen?OIN=00000099000000001000"),
            "0011 Header andere waarde dan voorgeschreven",
        ),
    ],
)
def test_missing_or_wrong_ws_addressing_is_refused_where_2w_be_is_required(
    server: Server, pki: Pki, headers: str, faultstring: str
) -> None:
    (code, text, _), _ = refused(
        server, pki, aanvraag([SUBSCRIBED], STRIKT, headers=headers), oin=STRIKT
    )
    assert code == "s:Client"
    assert text.startswith(faultstring + ": ")  # followed by the reason


def test_malformed_envelope_is_refused_with_0001(server: Server, pki: Pki) -> None:
    (code, text, _), document = refused(
        server, pki, b"<s:Envelope xmlns:s='" + SOAP.encode() + b"'><s:Body>"
    )
    assert code == "s:Client" and text.startswith("0001 Invalide soap envelope: ")
    assert receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Code") == "0001"


@pytest.mark.parametrize(
    "body",
    [
        b'<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><x/></e:Body></e:Envelope>',
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body/><s:Body/></s:Envelope>'.encode(),
        f'<s:Envelope xmlns:s="{SOAP}"><s:Body><a/><b/></s:Body></s:Envelope>'.encode(),
    ],
    ids=["soap-1.2", "two-bodies", "two-body-children"],
)
def test_envelopes_that_are_not_single_body_soap_11_are_refused(
    server: Server, pki: Pki, body: bytes
) -> None:
    (code, text, _), _ = refused(server, pki, body)
    assert code == "s:Client" and text.startswith("0001 Invalide soap envelope: ")


def test_doctype_and_entity_bomb_are_refused_before_parsing(server: Server, pki: Pki) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(f'<!ENTITY lol{i} "{"&lol;" * 10}">'.encode() for i in range(1, 10))
        + b"]>"
        + aanvraag([SUBSCRIBED], GEMEENTE).split(b"?>", 1)[1].replace(b"BESLUIT", b"&lol9;")
    )
    (code, text, _), document = refused(server, pki, bomb)
    assert code == "s:Client" and text.startswith("0001 Invalide soap envelope: ")
    assert "DTD" in (receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Reden") or "")


def test_a_bsn_key_split_by_a_comment_is_answered_as_the_whole_bsn(
    server: Server, pki: Pki
) -> None:
    response = post(
        f"{server.url}/abonnementen",
        aanvraag(["99999<!---->3653"], GEMEENTE),
        pki.clients[GEMEENTE].pair,
        pki.root,
    )
    assert response.status_code == 200
    document = etree.fromstring(response.content)
    assert [k.text for k in document.iter("{*}Key")] == [SUBSCRIBED]
    assert response.content.count(b"isBerichtSturen>true<") == 1


HUNDRED_THOUSAND_ATTRIBUTES = b" ".join(b'a%d="1"' % n for n in range(100_000))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            aanvraag([SUBSCRIBED], GEMEENTE).replace(
                b"<ValidateAbonnementen ",
                b"<ValidateAbonnementen " + HUNDRED_THOUSAND_ATTRIBUTES + b" ",
            ),
            "element ValidateAbonnementen heeft 100003 attributen en namespacedeclaraties;"
            " maximaal 64",
        ),
        (
            aanvraag([SUBSCRIBED], GEMEENTE).replace(b"?>", b'?><?xml-stylesheet href="x"?>', 1),
            "processing instructions zijn niet toegestaan",
        ),
        (
            aanvraag([SUBSCRIBED], GEMEENTE).replace(b'version="1.0"', b'version="1.1"', 1),
            "XML-versie 1.1 is niet toegestaan, gebruik XML 1.0",
        ),
    ],
    ids=["100000-attributes", "processing-instruction", "xml-1.1"],
)
def test_markup_or_cost_past_the_parser_limits_is_refused_with_0001_before_hashing(
    server: Server, pki: Pki, body: bytes, reason: str
) -> None:
    (code, text, _), document = refused(server, pki, body)
    assert (code, text) == ("s:Client", f"0001 Invalide soap envelope: {reason}")
    assert receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Reden") == (
        f"0001 Invalide soap envelope: {reason}"
    )
    # Hashed as raw bytes: the exclusive c14n is never computed over a tree the parser refused.
    raw = base64.b64encode(hashlib.sha256(body).digest()).decode()
    assert receipt_text(document, "a:BodyHash") == raw


@pytest.mark.parametrize(
    ("content_type", "faultstring", "reason"),
    [
        (
            "application/json",
            "0001 Invalide soap envelope",
            "Content-Type application/json is geen text/xml (SOAP 1.1)",
        ),
        (
            "text/plain",
            "0001 Invalide soap envelope",
            "Content-Type text/plain is geen text/xml (SOAP 1.1)",
        ),
        (
            "text/xml; charset=iso-8859-1",
            "0009 Niet volgens UTF",
            "charset iso-8859-1 is niet toegestaan, alleen UTF-8",
        ),
    ],
)
def test_a_valid_envelope_with_the_wrong_content_type_is_refused(
    server: Server, pki: Pki, content_type: str, faultstring: str, reason: str
) -> None:
    before = server.count("receipts", "outcome = 'Geweigerd'")
    response = requests.post(
        f"{server.url}/abonnementen",
        data=aanvraag([SUBSCRIBED], GEMEENTE),
        headers={"Content-Type": content_type, "SOAPAction": '""'},
        cert=pki.clients[GEMEENTE].pair,
        verify=str(pki.root),
        timeout=30,
    )
    assert response.status_code == 500
    assert fault_of(response)[:2] == ("s:Client", f"{faultstring}: {reason}")
    document = etree.fromstring(response.content)
    assert receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Reden") == f"{faultstring}: {reason}"
    assert server.count("receipts", "outcome = 'Geweigerd'") == before + 1


def test_a_request_over_the_size_limit_is_refused_unread(server: Server, pki: Pki) -> None:
    padding = b"<!--" + b"x" * (4 * 1024 * 1024) + b"-->"
    (code, text, _), document = refused(server, pki, aanvraag([SUBSCRIBED], GEMEENTE) + padding)
    assert code == "s:Client" and text.startswith("0001 Invalide soap envelope: ")
    assert "grens is 4194304" in (receipt_text(document, "a:Uitkomst/a:Geweigerd/a:Reden") or "")


def test_a_wrong_soapaction_is_refused_with_0003(server: Server, pki: Pki) -> None:
    (code, text, _), _ = refused(
        server, pki, aanvraag([SUBSCRIBED], GEMEENTE), soap_action='"urn:iets-anders"'
    )
    assert code == "s:Client"
    assert text.startswith("0003 Invalide soapaction: ")  # followed by the accepted values


def test_a_payload_failing_the_xsd_is_refused_with_0004_naming_the_element(
    server: Server, pki: Pki
) -> None:
    body = aanvraag([SUBSCRIBED], GEMEENTE).replace(
        b"<k:Rol>Burger</k:Rol>", b"<k:Rol>Bedrijf</k:Rol>"
    )
    (code, text, detail), _ = refused(server, pki, body)
    assert (code, text) == ("s:Client", "0004 Niet conform xsd")
    assert detail is not None and "Rol" in detail


# --- callers who get nothing ------------------------------------------------------------------


@pytest.mark.parametrize("who", ["unknown_oin", "no_oin"])
def test_trusted_certificate_without_a_configured_oin_gets_0002_and_no_receipt(
    server: Server, pki: Pki, who: str
) -> None:
    receipts = server.count("receipts")
    cert = getattr(pki, who).pair
    response = post(f"{server.url}/abonnementen", aanvraag([SUBSCRIBED], GEMEENTE), cert, pki.root)
    assert response.status_code == 500
    code, text, _ = fault_of(response)
    assert code == "s:Client" and text.startswith("0002 Niet geautoriseerd: ")
    assert receipt_element(etree.fromstring(response.content)) is None
    assert b"isBerichtSturen" not in response.content
    assert server.count("receipts") == receipts


@pytest.mark.parametrize("who", ["untrusted", "expired", "revoked"])
def test_certificate_that_fails_tls_verification_gets_no_answer_at_all(
    server: Server, pki: Pki, who: str
) -> None:
    receipts = server.count("receipts")
    cert = getattr(pki, who).pair
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        post(f"{server.url}/abonnementen", aanvraag([SUBSCRIBED], GEMEENTE), cert, pki.root)
    assert server.count("receipts") == receipts


def test_a_client_without_certificate_gets_no_answer(server: Server, pki: Pki) -> None:
    with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
        requests.post(
            f"{server.url}/abonnementen",
            data=aanvraag([SUBSCRIBED], GEMEENTE),
            verify=str(pki.root),
            timeout=10,
        )


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        (["-tls1_3", "-groups", "ffdhe2048:ffdhe3072"], False),
        (["-tls1_2", "-cipher", "DHE-RSA-AES256-GCM-SHA384"], False),
        (["-tls1_1"], False),
        (["-tls1_3", "-groups", "X25519"], True),
        (["-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256"], True),
    ],
    ids=["tls13-ffdhe-only", "tls12-dhe-only", "tls11", "tls13-x25519", "tls12-ecdhe-aead"],
)
def test_only_ncsc_approved_key_exchange_and_versions_are_negotiated(
    server: Server, pki: Pki, args: list[str], accepted: bool
) -> None:
    client = pki.clients[GEMEENTE]
    port = server.url.rsplit(":", 1)[1]
    # openssl s_client is the outside view: it can offer what Python's ssl module cannot.
    done = subprocess.run(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-CAfile",
            str(pki.root),
            "-cert",
            str(client.certificate),
            "-key",
            str(client.key),
            "-brief",
            *args,
        ],
        input=b"Q\n",
        capture_output=True,
        timeout=20,
        check=False,
    )
    output = done.stdout + done.stderr
    assert (b"Verification: OK" in output and b"Protocol version" in output) is accepted, output
