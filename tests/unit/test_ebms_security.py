"""adapter.ebms.security: XMLDSig over the envelope and MIME parts, XML Encryption of parts,
and the CPA's -s/-e settings that decide when they apply."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree
from sqlalchemy import text

from adapter.ebms.cpa import ChannelSecurity, CpaStore, check_cpa, load_cpa
from adapter.ebms.cpa.writer import CpaPartySpec, CpaSpec, write_cpa
from adapter.ebms.inbound import channel_of
from adapter.ebms.message import Route, acknowledgment, business_message, message_error, read_header
from adapter.ebms.mime import build_package, parse_package
from adapter.ebms.outbound import (
    answer_check,
    business_message_for,
    envelope_of,
    judge_answer,
)
from adapter.ebms.security import (
    DS,
    ExpectedSigner,
    SigningKey,
    TrustAnchors,
    decrypt,
    encrypt,
    open_package,
    seal,
    sign,
    signed_references,
    verify,
    verify_acknowledgment,
)
from adapter.errors import SecurityFailure
from adapter.kit.sender import Delivery, batch_request, verify_signed_answer
from adapter.kit.wire import WireMessage
from adapter.pki.devca import IssuedCertificate, new_hierarchy
from adapter.soap.xmlenc import AES128_GCM
from adapter.store.db import Database
from adapter.store.outbox import DueMessage, OutboxStatus

GEMEENTE = "00000099000000002000"
BELASTINGDIENST = "00000099000000001000"
MIJNOVERHEID = "00000004003214345001"
PARTS = [("batch@test", b"<Berichten/>"), ("bijlage@test", b"%PDF-1.7 general attachment")]
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Keys:
    gemeente: SigningKey
    belastingdienst: SigningKey  # same CA, another organisation
    stranger: SigningKey  # the gemeente's OIN, from a CA we do not trust
    mijnoverheid: SigningKey
    anchors: TrustAnchors


def _key(issued: IssuedCertificate) -> SigningKey:
    assert isinstance(issued.private_key, rsa.RSAPrivateKey)
    return SigningKey(issued.private_key, issued.certificate)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    hierarchy, other = new_hierarchy("Unit"), new_hierarchy("Stranger")
    directory = tmp_path_factory.mktemp("trust")
    (directory / "root.pem").write_bytes(hierarchy.root_pem())
    (directory / "chain.pem").write_bytes(hierarchy.chain_pem())
    tsp = hierarchy.tsp
    return Keys(
        gemeente=_key(tsp.issue_tls_certificate("Gemeente", oin=GEMEENTE)),
        belastingdienst=_key(tsp.issue_tls_certificate("Belastingdienst", oin=BELASTINGDIENST)),
        stranger=_key(other.tsp.issue_tls_certificate("Vreemd", oin=GEMEENTE)),
        mijnoverheid=_key(tsp.issue_tls_certificate("MijnOverheid", oin=MIJNOVERHEID)),
        anchors=TrustAnchors(
            directory / "root.pem",
            directory / "chain.pem",
            None,
            timedelta(minutes=5),
            timedelta(minutes=5),
        ),
    )


def envelope(parts: list[tuple[str, bytes]] = PARTS) -> bytes:
    _, soap = batch_request(
        GEMEENTE, MIJNOVERHEID, "cpa", parts[0][0], [c for c, _ in parts[1:]], NOW
    )
    return soap


def signed(key: SigningKey, parts: list[tuple[str, bytes]] = PARTS) -> etree._Element:
    return etree.fromstring(sign(envelope(), parts, key))


def refusal(
    document: etree._Element,
    keys: Keys,
    parts: dict[str, bytes] | None = None,
    signer: ExpectedSigner | None = None,
) -> str:
    with pytest.raises(SecurityFailure) as refused:
        verify(
            document,
            dict(PARTS) if parts is None else parts,
            signer or ExpectedSigner(GEMEENTE),
            keys.anchors,
            NOW,
        )
    return refused.value.description


# --- signatures -------------------------------------------------------------------------------


def test_a_message_signed_over_envelope_and_two_parts_verifies(keys: Keys) -> None:
    verified = verify(
        signed(keys.gemeente), dict(PARTS), ExpectedSigner(GEMEENTE), keys.anchors, NOW
    )
    assert [r.get("URI") for r in verified.references] == ["", "cid:batch@test", "cid:bijlage@test"]
    assert verified.certificate == keys.gemeente.certificate


def test_the_signature_sits_in_the_soap_header_with_the_ebms_transforms(keys: Keys) -> None:
    document = signed(keys.gemeente)
    signature = document.find(f"{{{document.nsmap['SOAP']}}}Header/{{{DS}}}Signature")
    assert signature is not None
    transforms = [t.get("Algorithm") for t in signature.iterfind(f".//{{{DS}}}Transform")]
    assert transforms == [
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/TR/1999/REC-xpath-19991116",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
    ]


def test_a_tampered_part_is_refused_naming_the_part(keys: Keys) -> None:
    parts = dict(PARTS) | {"bijlage@test": b"%PDF-1.7 another attachment"}
    assert "cid:bijlage@test is gewijzigd" in refusal(signed(keys.gemeente), keys, parts)


def test_a_tampered_header_is_refused(keys: Keys) -> None:
    document = signed(keys.gemeente)
    action = document.find(".//{*}Action")
    assert action is not None
    action.text = "GLOBE-R-A-Request"
    assert "klopt niet" in refusal(document, keys)


def test_an_element_the_signature_leaves_out_for_the_next_msh_is_refused(keys: Keys) -> None:
    document = signed(keys.gemeente)
    body = document.find(f"{{{document.nsmap['SOAP']}}}Body")
    assert body is not None
    body.insert(
        0,
        etree.fromstring(
            b'<eb:Manifest xmlns:eb="urn:x" xmlns:SOAP="http://schemas.xmlsoap.org/soap/envelope/"'
            b' SOAP:actor="urn:oasis:names:tc:ebxml-msg:actor:nextMSH"/>'
        ),
    )
    assert "volgende MSH" in refusal(document, keys)


def test_a_signature_that_omits_a_part_is_refused(keys: Keys) -> None:
    document = signed(keys.gemeente, PARTS[:1])
    assert "dekt MIME-deel cid:bijlage@test niet" in refusal(document, keys)


def test_a_reference_to_something_other_than_the_envelope_or_a_part_is_refused(
    keys: Keys,
) -> None:
    document = signed(keys.gemeente, [*PARTS, ("elsewhere@test", b"x")])
    assert "verwijst naar geen MIME-deel" in refusal(document, keys)


def test_an_unsigned_message_is_refused(keys: Keys) -> None:
    assert "niet ondertekend" in refusal(etree.fromstring(envelope()), keys)


def test_another_organisations_valid_signature_is_refused(keys: Keys) -> None:
    description = refusal(signed(keys.belastingdienst), keys)
    assert f"OIN {BELASTINGDIENST}" in description and GEMEENTE in description


def test_a_certificate_with_the_right_oin_from_an_untrusted_ca_is_refused(keys: Keys) -> None:
    assert "wordt niet aanvaard" in refusal(signed(keys.stranger), keys)


def test_a_certificate_other_than_the_one_the_cpa_names_is_refused(keys: Keys) -> None:
    pinned = ExpectedSigner(GEMEENTE, keys.gemeente.certificate)
    description = refusal(signed(keys.belastingdienst), keys, None, pinned)
    assert f"OIN {BELASTINGDIENST}" in description and "de CPA noemt" in description


def test_without_key_info_the_key_the_cpa_names_decides(keys: Keys) -> None:
    document = signed(keys.belastingdienst)
    key_info = document.find(f".//{{{DS}}}KeyInfo")
    assert key_info is not None
    key_info.getparent().remove(key_info)  # type: ignore[union-attr]
    pinned = ExpectedSigner(GEMEENTE, keys.gemeente.certificate)
    assert "klopt niet met het certificaat" in refusal(document, keys, None, pinned)


def test_the_certificate_the_cpa_names_is_accepted(keys: Keys) -> None:
    pinned = ExpectedSigner(GEMEENTE, keys.gemeente.certificate)
    verify(signed(keys.gemeente), dict(PARTS), pinned, keys.anchors, NOW)


@pytest.mark.parametrize(
    ("element", "algorithm", "named"),
    [
        ("SignatureMethod", "http://www.w3.org/2000/09/xmldsig#rsa-sha1", "rsa-sha1"),
        ("DigestMethod", "http://www.w3.org/2000/09/xmldsig#sha1", "xmldsig#sha1"),
        ("CanonicalizationMethod", "http://www.w3.org/TR/2001/REC-xml-c14n-20010315", "c14n"),
    ],
)
def test_weak_or_other_algorithms_are_refused_by_name(
    keys: Keys, element: str, algorithm: str, named: str
) -> None:
    document = signed(keys.gemeente)
    method = document.find(f".//{{{DS}}}{element}")
    assert method is not None
    method.set("Algorithm", algorithm)
    assert named in refusal(document, keys)


# --- encryption -------------------------------------------------------------------------------


def test_decrypt_gives_back_what_encrypt_was_given(keys: Keys) -> None:
    data = encrypt(b"%PDF-1.7 secret", "application/pdf", "p@test", keys.mijnoverheid.certificate)
    assert b"secret" not in data
    assert decrypt(data, keys.mijnoverheid) == ("application/pdf", b"%PDF-1.7 secret")


def test_aes_128_gcm_works_as_well(keys: Keys) -> None:
    data = encrypt(b"x", "text/xml", "p@test", keys.mijnoverheid.certificate, AES128_GCM)
    assert decrypt(data, keys.mijnoverheid)[1] == b"x"


def test_a_part_encrypted_for_another_key_is_refused(keys: Keys) -> None:
    data = encrypt(b"x", "text/xml", "p@test", keys.gemeente.certificate)
    with pytest.raises(SecurityFailure, match="niet voor onze sleutel"):
        decrypt(data, keys.mijnoverheid)


def test_a_changed_ciphertext_is_refused(keys: Keys) -> None:
    document = etree.fromstring(encrypt(b"x" * 40, "text/xml", "p", keys.mijnoverheid.certificate))
    value = document.findall(".//{*}CipherValue")[-1]
    value.text = "A" + (value.text or "")[1:]
    with pytest.raises(SecurityFailure, match="AES-GCM-tag"):
        decrypt(etree.tostring(document), keys.mijnoverheid)


def test_a_part_that_is_not_encrypted_is_refused_when_the_cpa_asks_for_encryption(
    keys: Keys,
) -> None:
    with pytest.raises(SecurityFailure, match="niet versleuteld"):
        decrypt(b"<Berichten/>", keys.mijnoverheid, "cid:batch@test")


def test_a_cbc_encrypted_part_is_refused(keys: Keys) -> None:
    data = encrypt(b"x", "text/xml", "p", keys.mijnoverheid.certificate).replace(
        b"xmlenc11#aes256-gcm", b"xmlenc#aes256-cbc"
    )
    with pytest.raises(SecurityFailure, match="aes256-cbc"):
        decrypt(data, keys.mijnoverheid)


# --- a channel's rule, both ways ----------------------------------------------------------------


def _sealed_security(keys: Keys) -> ChannelSecurity:
    der = keys.mijnoverheid.certificate.public_bytes(serialization.Encoding.DER)
    return ChannelSecurity(sign=True, encrypt=True, ack_signed=True, encryption_certificate=der)


def test_a_sealed_message_opens_into_the_original_parts(keys: Keys) -> None:
    parts = [(cid, "application/pdf", content) for cid, content in PARTS]
    soap, sent = seal(envelope(), parts, _sealed_security(keys), keys.gemeente)
    assert all(content_type == "application/xml" for _, content_type, _ in sent)
    content_type, body = build_package(soap, sent)
    package = parse_package(content_type, body)
    document = etree.fromstring(package.soap.body)
    verified, opened = open_package(
        document, package, _sealed_security(keys), GEMEENTE, keys.mijnoverheid, keys.anchors, NOW
    )
    assert verified is not None
    assert [(p.content_id, p.content_type, p.body) for p in opened.attachments] == parts


def test_an_unsigned_channel_leaves_the_message_as_it_is(keys: Keys) -> None:
    original = envelope()
    soap, sent = seal(original, [("a", "text/xml", b"<a/>")], ChannelSecurity(), None)
    assert soap == original
    assert sent == [("a", "text/xml", b"<a/>")]


def test_a_signed_acknowledgment_carries_and_is_checked_against_our_references(
    keys: Keys,
) -> None:
    request = signed(keys.gemeente)
    _, ack = acknowledgment(read_header(request), NOW, references=signed_references(request))
    signed_ack = etree.fromstring(sign(ack, [], keys.mijnoverheid))
    verify_acknowledgment(signed_ack, ExpectedSigner(MIJNOVERHEID), keys.anchors, NOW, request)
    other = signed(keys.gemeente, [(PARTS[0][0], b"<other/>"), PARTS[1]])
    with pytest.raises(SecurityFailure, match="ds:Reference"):
        verify_acknowledgment(signed_ack, ExpectedSigner(MIJNOVERHEID), keys.anchors, NOW, other)


# --- the CPA's -s/-e settings ------------------------------------------------------------------


def _cpa(tmp_path: Path, profile: str, keys: Keys) -> Path:
    spec = CpaSpec(
        CpaPartySpec(
            GEMEENTE, "Gemeente", "SR", "https://127.0.0.1:8444/ebms", keys.gemeente.certificate
        ),
        CpaPartySpec(
            MIJNOVERHEID,
            "MijnOverheid",
            "SP",
            "https://127.0.0.1:8443/berichtenbox/ebms",
            keys.mijnoverheid.certificate,
        ),
        profile=profile,
    )
    path = tmp_path / f"{profile}.xml"
    path.write_bytes(write_cpa(spec, NOW))
    return path


@pytest.mark.parametrize(
    ("profile", "sign_", "encrypt_", "ack_signed"),
    [
        ("osb-rm", False, False, False),
        ("osb-rm-s", True, False, True),
        ("osb-rm-e", True, True, True),
        ("osb-be-s", True, False, False),
        ("osb-be-e", True, True, False),
    ],
)
def test_the_cpa_reader_reads_the_security_of_each_profile(
    tmp_path: Path, keys: Keys, profile: str, sign_: bool, encrypt_: bool, ack_signed: bool
) -> None:
    cpa = load_cpa(_cpa(tmp_path, profile, keys))
    gemeente = cpa.party(GEMEENTE)
    assert gemeente is not None
    security = gemeente.security
    assert (security.sign, security.encrypt, security.ack_signed) == (sign_, encrypt_, ack_signed)
    if sign_:
        assert security.signature_algorithm == "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        assert security.hash_function == "http://www.w3.org/2001/04/xmlenc#sha256"
        assert x509.load_der_x509_certificate(security.signing_certificate or b"") == (
            keys.gemeente.certificate
        )
    if encrypt_:
        assert security.encryption_algorithm == "http://www.w3.org/2009/xmlenc11#aes256-gcm"
        assert security.encryption_certificate == security.signing_certificate


def test_a_cpa_asking_for_sha1_is_refused_by_the_check(tmp_path: Path, keys: Keys) -> None:
    path = _cpa(tmp_path, "osb-rm-s", keys)
    path.write_bytes(path.read_bytes().replace(b"xmlenc#sha256", b"xmldsig#sha1", 1))
    problems = check_cpa(path)
    assert any("HashFunction" in p and "xmldsig#sha1" in p for p in problems), problems


def test_a_cpa_whose_parties_use_different_profiles_is_refused(tmp_path: Path, keys: Keys) -> None:
    path = _cpa(tmp_path, "osb-rm-s", keys)
    text = path.read_text(encoding="utf-8")
    start = text.index("<tp:SenderNonRepudiation>")
    end = text.index("</tp:SenderNonRepudiation>") + len("</tp:SenderNonRepudiation>")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    assert any("one CPA has one profile" in p for p in check_cpa(path)), check_cpa(path)


def test_an_encrypted_profile_needs_both_certificates(keys: Keys) -> None:
    spec = CpaSpec(
        CpaPartySpec(GEMEENTE, "Gemeente", "SR", "https://127.0.0.1:8444/ebms"),
        CpaPartySpec(MIJNOVERHEID, "MijnOverheid", "SP", "https://127.0.0.1:8443/ebms"),
        profile="osb-rm-e",
    )
    with pytest.raises(ValueError, match="needs the certificate of Gemeente"):
        write_cpa(spec, NOW)


def test_the_outbox_does_not_count_a_badly_signed_acknowledgment_as_a_delivery(
    keys: Keys,
) -> None:
    request = signed(keys.mijnoverheid)
    header = read_header(request)
    _, ack = acknowledgment(header, NOW, references=signed_references(request))
    forged = sign(ack, [], keys.belastingdienst)  # valid, but not by the receiver

    def check(document: etree._Element) -> None:
        verify_acknowledgment(document, ExpectedSigner(GEMEENTE), keys.anchors, NOW, request)

    status, reason = judge_answer(header.message_id, 200, "text/xml", forged, True, check)
    assert status is OutboxStatus.PENDING and reason is not None and BELASTINGDIENST in reason
    unsigned_status, _ = judge_answer(header.message_id, 200, "text/xml", ack, True, check)
    assert unsigned_status is OutboxStatus.PENDING
    good = sign(ack, [], keys.gemeente)
    assert judge_answer(header.message_id, 200, "text/xml", good, True, check) == (
        OutboxStatus.DELIVERED,
        None,
    )


def _edited(path: Path, old: str, new: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new), encoding="utf-8")
    return check_cpa(path)


def test_an_encrypted_cpa_without_the_receivers_certificate_is_refused(
    tmp_path: Path, keys: Keys
) -> None:
    path = _cpa(tmp_path, "osb-rm-e", keys)
    text = path.read_text(encoding="utf-8")
    start = text.index("<ds:KeyInfo")
    end = text.index("</ds:KeyInfo>") + len("</ds:KeyInfo>")
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    problems = check_cpa(path)
    assert any("EncryptionCertificateRef" in p and "X509Certificate" in p for p in problems)


def test_a_signed_cpa_with_unsigned_acknowledgments_is_refused(tmp_path: Path, keys: Keys) -> None:
    path = _cpa(tmp_path, "osb-rm-s", keys)
    problems = _edited(
        path, 'tp:ackSignatureRequested="always"', 'tp:ackSignatureRequested="never"'
    )
    assert any("ackSignatureRequested" in p and "'always'" in p for p in problems), problems


def test_a_cpa_asking_for_aes_cbc_is_refused(tmp_path: Path, keys: Keys) -> None:
    path = _cpa(tmp_path, "osb-rm-e", keys)
    problems = _edited(path, "xmlenc11#aes256-gcm", "xmlenc#aes256-cbc")
    assert any("EncryptionAlgorithm" in p and "aes256-cbc" in p for p in problems), problems


# --- reliability by the CPA's values (osb-rm against osb-be) -----------------------------------


@pytest.mark.parametrize(
    ("profile", "reliable"),
    [("osb-rm", True), ("osb-rm-s", True), ("osb-be", False), ("osb-be-s", False)],
)
def test_a_best_effort_cpa_asks_for_no_acknowledgment_retries_or_duplicate_elimination(
    tmp_path: Path, keys: Keys, profile: str, reliable: bool
) -> None:
    cpa = load_cpa(_cpa(tmp_path, profile, keys))
    for party in cpa.parties:
        assert party.acknowledges() is reliable
        assert party.eliminates_duplicates() is reliable
        assert (party.retries > 0) is reliable
        assert (party.persist_duration > timedelta(0)) is reliable


def test_per_message_values_follow_what_the_message_asks(tmp_path: Path, keys: Keys) -> None:
    party = load_cpa(_cpa(tmp_path, "osb-rm", keys)).parties[0]
    per_message = replace(party, ack_requested="perMessage", duplicate_elimination="perMessage")
    assert per_message.acknowledges(True) and not per_message.acknowledges(False)
    assert per_message.eliminates_duplicates(True)
    assert not per_message.eliminates_duplicates(False)
    assert party.acknowledges(False)  # always: even a message that did not ask


def test_a_best_effort_message_carries_neither_ack_requested_nor_duplicate_elimination() -> None:
    _, reliable = batch_request(GEMEENTE, MIJNOVERHEID, "cpa", "batch@test", [], NOW)
    _, best_effort = batch_request(
        GEMEENTE, MIJNOVERHEID, "cpa", "batch@test", [], NOW, reliable=False
    )
    asked = read_header(etree.fromstring(reliable))
    assert asked.ack_requested and asked.duplicate_elimination
    header = read_header(etree.fromstring(best_effort))
    assert not header.ack_requested and not header.duplicate_elimination
    assert header.manifest == ("batch@test",)


@pytest.mark.parametrize(("profile", "reliable"), [("osb-rm-s", True), ("osb-be-s", False)])
def test_the_outbox_sends_best_effort_once_without_waiting_for_an_acknowledgment(
    tmp_path: Path, keys: Keys, database_url: str, profile: str, reliable: bool
) -> None:
    cpa = load_cpa(_cpa(tmp_path, profile, keys))
    gemeente = cpa.party(GEMEENTE)
    assert gemeente is not None
    route = Route(cpa.cpa_id, "c1", MIJNOVERHEID, "SP", GEMEENTE, "SR", "s", None, "Result")
    database = Database(database_url)
    database.create_schema()
    try:
        with database.repositories() as repositories:
            message = business_message_for(
                cpa, gemeente, route, "req@test", b"<a/>", [], NOW, key=keys.mijnoverheid
            )
            repositories.outbox.add(message, NOW)
            message_id = message.message_id
        with database.repositories() as repositories:
            stored = repositories.outbox.sent_message(message_id, GEMEENTE)
            assert repositories.outbox.sent_message(message_id, MIJNOVERHEID) is None
            due, _ = repositories.outbox.claim_due(NOW, 100)
        assert stored is not None
        header = read_header(envelope_of(*stored))
        assert (header.ack_requested, header.duplicate_elimination) == (reliable, reliable)
        (ours,) = [m for m in due if m.message_id == message_id]  # due at once, not expired
        assert ours.needs_ack is reliable
        with database.transaction() as session:
            row = session.execute(
                text("SELECT max_attempts FROM outbox WHERE message_id = :id"),
                {"id": message_id},
            ).one()
        assert (row.max_attempts == 1) is not reliable  # best effort: retries 0
    finally:
        database.dispose()


def test_the_outbox_takes_a_synchronous_message_error_on_a_signed_channel_only_when_signed(
    tmp_path: Path, keys: Keys
) -> None:
    cpa = load_cpa(_cpa(tmp_path, "osb-rm-s", keys))
    gemeente = cpa.party(GEMEENTE)
    assert gemeente is not None
    route = Route(cpa.cpa_id, "c1", MIJNOVERHEID, "SP", GEMEENTE, "SR", "s", None, "Result")
    _, soap = business_message(route, NOW, None, ["p@test"], signed_ack=True)
    ours, parts = seal(
        soap, [("p@test", "text/xml", b"<a/>")], gemeente.security, keys.mijnoverheid
    )
    content_type, body = build_package(ours, parts)
    header = read_header(etree.fromstring(ours))
    message = DueMessage(1, header.message_id, GEMEENTE, "", content_type, body, True)
    check = answer_check(message, CpaStore([cpa]), keys.anchors)
    _, error = message_error(header, SecurityFailure("kan niet"), NOW)

    unsigned = judge_answer(header.message_id, 200, "text/xml", error, True, check)
    assert unsigned[0] is OutboxStatus.PENDING
    assert unsigned[1] is not None and unsigned[1].startswith("MessageError afgewezen")
    forged = sign(error, [], keys.belastingdienst)
    assert judge_answer(header.message_id, 200, "text/xml", forged, True, check)[0] is (
        OutboxStatus.PENDING
    )
    good = sign(error, [], keys.gemeente)
    assert judge_answer(header.message_id, 200, "text/xml", good, True, check) == (
        OutboxStatus.FAILED,
        "MessageError SecurityFailure: kan niet",
    )


# --- our MessageErrors on signed channels -----------------------------------------------------


def test_a_refusal_is_signed_on_the_channel_of_the_cpa_and_oin_the_tls_certificate_proved(
    tmp_path: Path, keys: Keys
) -> None:
    signed_cpa = load_cpa(_cpa(tmp_path, "osb-rm-s", keys))
    store = CpaStore([signed_cpa])
    header = read_header(etree.fromstring(envelope()))
    header = replace(header, cpa_id=signed_cpa.cpa_id)
    channel = channel_of(header, store, GEMEENTE)
    assert channel is not None and channel.oin == GEMEENTE and channel.security.sign
    # The header claims the gemeente, but TLS proved another OIN: no channel of that CPA.
    assert channel_of(header, store, BELASTINGDIENST) is None
    # An unknown CPAId, or no readable header: no channel, so the refusal goes unsigned.
    assert channel_of(replace(header, cpa_id="onbekend"), store, GEMEENTE) is None
    assert channel_of(None, store, GEMEENTE) is None


def _delivery(answer: bytes, request: bytes, error: tuple[str, str] | None) -> Delivery:
    content_type, body = build_package(request, [(c, "application/xml", b) for c, b in PARTS])
    return Delivery(
        "id", len(body), 200, etree.fromstring(answer), error, WireMessage(content_type, body)
    )


def test_the_kit_accepts_a_message_error_only_when_mijnoverheid_signed_it(
    tmp_path: Path, keys: Keys
) -> None:
    mijnoverheid = load_cpa(_cpa(tmp_path, "osb-rm-s", keys)).party(MIJNOVERHEID)
    assert mijnoverheid is not None
    request = sign(envelope(), PARTS, keys.gemeente)
    _, error = message_error(read_header(etree.fromstring(request)), SecurityFailure("x"), NOW)
    refused = ("SecurityFailure", "x")
    signed_error = _delivery(sign(error, [], keys.mijnoverheid), request, refused)
    verified = verify_signed_answer(signed_error, mijnoverheid, keys.anchors)
    assert verified is not None and verified.certificate == keys.mijnoverheid.certificate
    with pytest.raises(SecurityFailure, match="niet ondertekend"):
        verify_signed_answer(_delivery(error, request, refused), mijnoverheid, keys.anchors)
    forged = _delivery(sign(error, [], keys.belastingdienst), request, refused)
    with pytest.raises(SecurityFailure):
        verify_signed_answer(forged, mijnoverheid, keys.anchors)
    unsigned_channel = load_cpa(_cpa(tmp_path, "osb-rm", keys)).party(MIJNOVERHEID)
    assert unsigned_channel is not None  # osb-rm: nothing to check
    assert (
        verify_signed_answer(_delivery(error, request, refused), unsigned_channel, keys.anchors)
        is None
    )
