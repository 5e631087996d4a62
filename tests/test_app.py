"""The WSGI app called without a socket: refusals that are awkward to provoke over TLS."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from sqlalchemy import event, select

from adapter.config import load_config
from adapter.ebms.mime import build_package
from adapter.kit.sender import batch_request
from adapter.receipts import Receipt, verify
from adapter.store.models import Bericht
from adapter.transport.identity import CLIENT_CERT_KEY
from adapter.wiring import EBMS_PATH, AdapterApp, build_app
from tests.berichtverwerk_samples import batch_xml
from tests.conftest import (
    CONF,
    GEMEENTE,
    UNKNOWN_OIN,
    Pki,
    free_port,
    import_example_accounts,
    write_config,
)
from tests.ebms_helpers import MIJNOVERHEID, cpa_id
from tests.soap_helpers import SOAP, aanvraag, receipt_element, verify_with_libxmlsec

ZONDER_DIENST = f"""
[[organisation]]
oin = "{UNKNOWN_OIN}"
name = "Gemeente Alleen Zaken"
services = ["LopendeZaken"]
bericht_types = ["BESLUIT"]
"""


def der_of(pem_file: Path) -> bytes:
    return x509.load_pem_x509_certificates(pem_file.read_bytes())[0].public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def app_config(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("app")
    config = write_config(directory, pki, f"sqlite:///{directory / 'a.db'}", free_port())
    organisations = directory / "conf" / "organisations.toml"
    organisations.write_text(
        (CONF / "organisations.toml").read_text() + ZONDER_DIENST, encoding="utf-8"
    )
    return config


@pytest.fixture(scope="module")
def app(app_config: Path) -> AdapterApp:
    config = load_config(app_config, environ={})
    built = build_app(config)
    built.database.create_schema()
    return built


def call(
    app: AdapterApp,
    cert: bytes | None,
    body: bytes = b"",
    *,
    method: str = "POST",
    path: str = "/abonnementen",
    query: str = "",
    soap_action: str = '""',
    content_length: bool = True,
    content_type: str | None = "text/xml; charset=utf-8",
) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "HTTP_SOAPACTION": soap_action,
        "wsgi.input": io.BytesIO(body),
    }
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    if content_length:
        environ["CONTENT_LENGTH"] = str(len(body))
    if cert is not None:
        environ[CLIENT_CERT_KEY] = cert
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = status, dict(headers)

    payload = b"".join(app(environ, start_response))
    return str(seen["status"]), seen["headers"], payload  # type: ignore[return-value]


def faultstring(body: bytes) -> str:
    return etree.fromstring(body).findtext(f"{{{SOAP}}}Body/{{{SOAP}}}Fault/faultstring") or ""


def test_a_valid_request_without_content_length_is_answered(app: AdapterApp, pki: Pki) -> None:
    cert = der_of(pki.clients[GEMEENTE].certificate)
    status, _, body = call(app, cert, aanvraag(["999993653"], GEMEENTE), content_length=False)
    assert status == "200 OK"
    verify(etree.fromstring(body), pki.root)


def test_utf16_request_is_refused_with_0009(app: AdapterApp, pki: Pki) -> None:
    body = aanvraag(["999993653"], GEMEENTE).decode().replace("utf-8", "utf-16").encode("utf-16")
    status, _, answer = call(app, der_of(pki.clients[GEMEENTE].certificate), body)
    assert status.startswith("500")
    assert faultstring(answer).startswith("0009 Niet volgens UTF: ")


def test_a_must_understand_header_we_do_not_process_is_refused(app: AdapterApp, pki: Pki) -> None:
    security = (
        '<wsse:Security s:mustUnderstand="1" xmlns:wsse="http://docs.oasis-open.org/wss/2004/01/'
        'oasis-200401-wss-wssecurity-secext-1.0.xsd"/>'
    )
    body = aanvraag(["999993653"], GEMEENTE, headers=security)
    status, _, answer = call(app, der_of(pki.clients[GEMEENTE].certificate), body)
    fault = etree.fromstring(answer).find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert status.startswith("500")
    assert fault.findtext("faultcode") == "s:MustUnderstand"
    assert (fault.findtext("faultstring") or "").startswith(
        "0010 Headers anders dan WSA-headers: Security ("
    )


def test_an_organisation_not_granted_the_service_is_refused_with_a_receipt(
    app: AdapterApp, pki: Pki
) -> None:
    status, _, answer = call(
        app, der_of(pki.unknown_oin.certificate), aanvraag(["999993653"], UNKNOWN_OIN)
    )
    assert status.startswith("500")
    assert faultstring(answer).startswith("0002 Niet geautoriseerd: ")
    document = etree.fromstring(answer)
    verify_with_libxmlsec(document, pki.root)
    assert verify(document, pki.root).receipt.outcome.code == "0002"


def test_no_client_certificate_gets_0002_without_receipt(app: AdapterApp) -> None:
    status, _, answer = call(app, None, aanvraag(["999993653"], GEMEENTE))
    assert status.startswith("500")
    assert faultstring(answer) == "0002 Niet geautoriseerd: geen clientcertificaat"
    assert receipt_element(etree.fromstring(answer)) is None


def test_a_request_without_content_type_is_refused_with_0001(app: AdapterApp, pki: Pki) -> None:
    cert = der_of(pki.clients[GEMEENTE].certificate)
    status, _, answer = call(app, cert, aanvraag(["999993653"], GEMEENTE), content_type=None)
    assert status.startswith("500")
    assert faultstring(answer).startswith("0001 Invalide soap envelope: ")
    reason = verify(etree.fromstring(answer), pki.root).receipt.outcome.reason
    assert reason == "0001 Invalide soap envelope: Content-Type ontbreekt; SOAP 1.1 vraagt text/xml"


def test_an_empty_body_is_refused_with_0001(app: AdapterApp, pki: Pki) -> None:
    _, _, answer = call(app, der_of(pki.clients[GEMEENTE].certificate), b"")
    assert faultstring(answer).startswith("0001 Invalide soap envelope: ")


def test_unknown_paths_and_methods_get_plain_http_errors(app: AdapterApp, pki: Pki) -> None:
    cert = der_of(pki.clients[GEMEENTE].certificate)
    assert call(app, cert, method="GET", path="/nergens")[0] == "404 Not Found"
    assert call(app, cert, method="PUT")[0] == "405 Method Not Allowed"
    assert call(app, cert, method="GET", query="xsd=adapter.toml")[0] == "404 Not Found"
    status, headers, body = call(app, cert, method="HEAD", query="wsdl")
    assert status == "200 OK" and body == b"" and int(headers["Content-Length"]) > 1000


def test_database_unavailable_gets_0051_with_a_signed_receipt(app_config: Path, pki: Pki) -> None:
    # Nothing listens on port 1: every connection attempt fails at once.
    config = load_config(
        app_config, environ={"DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/x"}
    )
    down = build_app(config)
    status, _, answer = call(
        down, der_of(pki.clients[GEMEENTE].certificate), aanvraag(["999993653"], GEMEENTE)
    )
    document = etree.fromstring(answer)
    fault = document.find(f"{{{SOAP}}}Body/{{{SOAP}}}Fault")
    assert status.startswith("500")
    assert fault.findtext("faultcode") == "s:Server"
    assert fault.findtext("faultstring") == "0051 Service niet beschikbaar"
    assert fault.find("detail/{*}DependentServiceFault") is not None
    assert verify(document, pki.root).receipt.outcome.code == "0051"


def test_the_configured_xml_limits_reach_the_endpoint(
    pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("limits")
    config_file = write_config(directory, pki, f"sqlite:///{directory / 'a.db'}", free_port())
    # A depth every ValidateAbonnementen request exceeds: the refusal must come from the
    # configuration, not from the defaults (64), which the same request passes.
    config_file.write_text(config_file.read_text() + "[limits]\nmax_xml_depth = 4\n")
    strict = build_app(load_config(config_file, environ={}))
    strict.database.create_schema()
    cert = der_of(pki.clients[GEMEENTE].certificate)
    status, _, answer = call(strict, cert, aanvraag(["999993653"], GEMEENTE))
    assert status.startswith("500")
    assert faultstring(answer).startswith("0001 Invalide soap envelope: ")
    assert (
        "dieper genest dan 4" in verify(etree.fromstring(answer), pki.root).receipt.outcome.reason
    )


def test_a_fault_that_cannot_be_built_still_answers_a_bare_0051(
    app: AdapterApp, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A defect in building a refusal (here: signing its receipt) must not cost the answer."""
    endpoint = app.routes["/abonnementen"].endpoint

    def broken_sign(_receipt: object) -> None:
        raise RuntimeError("a defect while building the fault")

    monkeypatch.setattr(endpoint.signer, "signed_xml", broken_sign)  # type: ignore[attr-defined]
    status, _, answer = call(app, der_of(pki.clients[GEMEENTE].certificate), b"<niet-soap/>")
    assert status.startswith("500")
    assert faultstring(answer) == "0051 Service niet beschikbaar"


def test_a_batch_takes_the_write_lock_only_after_its_answer_is_built_and_signed(
    app: AdapterApp, app_config: Path, pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite every other message's writes wait for the one write lock: a batch judges its
    letters and builds and signs its receipt and Acknowledgment before its first write
    (BEGIN IMMEDIATE), and then stores all of it in that one transaction."""
    import_example_accounts(app_config, app.database.url)  # 999993653 opted in for GEMEENTE
    endpoint = app.routes[EBMS_PATH].endpoint
    seen: list[str] = []
    sign = endpoint.signer.signed_xml  # type: ignore[attr-defined]

    def signing(receipt: Receipt) -> bytes:
        seen.append("receipt signed")
        return sign(receipt)  # type: ignore[no-any-return]

    def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
        # BEGIN IMMEDIATE passes SQLAlchemy's statement events; the commit goes to the driver.
        if sql.startswith("BEGIN"):
            seen.append(sql)

    monkeypatch.setattr(endpoint.signer, "signed_xml", signing)  # type: ignore[attr-defined]
    event.listen(app.database.engine, "before_cursor_execute", statement)
    bericht_ids = [str(uuid.uuid4()) for _ in range(3)]
    message_id, soap = batch_request(
        GEMEENTE, MIJNOVERHEID, cpa_id(GEMEENTE), "batch@test", [], datetime.now(UTC)
    )
    payload = batch_xml([{"BerichtID": bericht_id} for bericht_id in bericht_ids])
    content_type, body = build_package(soap, [("batch@test", "text/xml; charset=UTF-8", payload)])
    try:
        status, _, answer = call(
            app,
            der_of(pki.clients[GEMEENTE].certificate),
            body,
            path=EBMS_PATH,
            soap_action='"ebXML"',
            content_type=content_type,
        )
    finally:
        event.remove(app.database.engine, "before_cursor_execute", statement)
    assert status.startswith("200")
    receipt = verify(etree.fromstring(answer), pki.root).receipt
    assert {b.bericht_id: b.verwerkingscode for b in receipt.outcome.berichten} == dict.fromkeys(
        bericht_ids, "Verwerkt"
    )
    assert seen == ["receipt signed", "BEGIN IMMEDIATE"]
    with app.database.transaction() as session:
        stored = session.scalars(
            select(Bericht.bericht_id).where(Bericht.ebms_message_id == message_id)
        )
        assert sorted(stored) == sorted(bericht_ids)
