"""XMLDSig and XML Encryption of ebMS 2.0 messages: the osb -s and -e profiles.

Signing follows ebMS 2.0 section 4.1: one `ds:Signature` as a child of `SOAP-ENV:Header`,
exclusive C14N, a Reference `URI=""` over the envelope (enveloped-signature, an XPath filter
that leaves out header blocks meant for the next MSH, exclusive C14N) and one Reference
`cid:<content-id>` per MIME payload part, digested over the part's content as it travels.
python-xmlsec (libxmlsec1) computes and checks every digest and the signature; it reads the
`cid:` parts through IO callbacks that serve only the parts of the message being handled, so
a Reference can never make it open a file or a URL.

`verify` never accepts a message merely because a signature validates. It also requires:
exactly one signature in the header; no element for the next MSH (the envelope Reference
leaves those out, and Digikoppeling has no intermediaries, so they would be unsigned content);
every payload part covered and nothing else referenced;
RSA-SHA256/384/512 and SHA-256/384/512 only (SPEC-digikoppeling §1.5); and a signer the CPA
names. The signer rule: when the CPA's SigningCertificateRef holds a certificate, the
signature must be made with exactly that certificate; when it holds none (the development
CPAs), the certificate in KeyInfo must chain to our trust anchors, be valid now, and carry the
sending party's OIN in subject serialNumber. So a valid signature by another organisation's
certificate is refused either way. Every refusal is a `SecurityFailure` that says what is
wrong (which part, which algorithm, whose certificate).

Encryption (-e) follows the layout of the Dutch reference MSH: each payload part is replaced
by an `xenc:EncryptedData` document (application/xml) carrying the part's Content-ID as Id,
its media type as MimeType, AES-GCM ciphertext (IV, ciphertext and tag, XML Encryption 1.1)
and one `xenc:EncryptedKey` with the AES key wrapped by RSA-OAEP for the receiver's
certificate. Messages are encrypted first and then signed, so the signature and the receipt's
part hashes cover what went over the wire; the receiver verifies, then decrypts. The XML
Encryption primitives and the allowed algorithm URIs are those of `adapter.soap.xmlenc`,
which WUS shares; unlike WUS, ebMS decrypts AES-GCM only, never legacy AES-CBC.
"""

from __future__ import annotations

import base64
import copy
import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from lxml import etree
from xmlsec import constants as _C

from adapter.ebms.cpa import ChannelSecurity
from adapter.ebms.message import EB
from adapter.ebms.mime import Package, cid_url, parse_content_type
from adapter.errors import SecurityFailure, WsSecurityFault, XmlEncryptionRefused
from adapter.soap import xmlenc
from adapter.soap.envelope import SOAP_ENV
from adapter.soap.wssecurity import SignerTrust, WssCredentials
from adapter.soap.xml import parse_untrusted
from adapter.soap.xmlenc import (
    AES256_GCM,
    DIGEST_HASHES,
    EXC_C14N,
    RSA_SHA256,
    RSA_SHA384,
    RSA_SHA512,
    SHA256,
    SHA384,
    SHA512,
    XENC,
)
from adapter.soap.xmlenc import DSIG as DS

if TYPE_CHECKING:
    from xmlsec.constants import __Transform as XmlsecTransform

ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
XPATH = "http://www.w3.org/TR/1999/REC-xpath-19991116"
NEXT_MSH = "urn:oasis:names:tc:ebxml-msg:actor:nextMSH"
SOAP_NEXT = "http://schemas.xmlsoap.org/soap/actor/next"
# ebMS 2.0 section 4.1.3: header blocks for the next MSH may change on the way; not signed.
NEXT_MSH_FILTER = (
    f'not(ancestor-or-self::node()[@SOAP:actor="{NEXT_MSH}"] | '
    f'ancestor-or-self::node()[@SOAP:actor="{SOAP_NEXT}"])'
)

# The URIs Digikoppeling allows (adapter.soap.xmlenc), as libxmlsec1 names them.
SIGNATURE_METHODS: Mapping[str, XmlsecTransform] = {
    RSA_SHA256: _C.TransformRsaSha256,
    RSA_SHA384: _C.TransformRsaSha384,
    RSA_SHA512: _C.TransformRsaSha512,
}
DIGEST_METHODS: Mapping[str, XmlsecTransform] = {
    SHA256: _C.TransformSha256,
    SHA384: _C.TransformSha384,
    SHA512: _C.TransformSha512,
}
ENCRYPTED_PART_TYPE = "application/xml"
_DS = f"{{{DS}}}"
_XENC = f"{{{XENC}}}"
_HEADER = f"{{{SOAP_ENV}}}Header"
_SIGNATURE_LOCATION = "//Header/Signature"


# --- keys and trust ---------------------------------------------------------------------------


# Our key and the signer trust are those of WS-Security (`[wss]` in conf, by default the TLS
# pair; the TLS trust anchors, intermediates and CRL): one key and one trust per adapter.
SigningKey = WssCredentials
TrustAnchors = SignerTrust


@dataclass(frozen=True)
class ExpectedSigner:
    """Who must have signed: the sending party's OIN, and the certificate its CPA names."""

    oin: str
    certificate: x509.Certificate | None = None  # None: the CPA names none, check the chain


def signer_of(security: ChannelSecurity, oin: str) -> ExpectedSigner:
    """Who must have signed what the party `oin` with this channel security sends."""
    pinned = security.signing_certificate
    return ExpectedSigner(oin, x509.load_der_x509_certificate(pinned) if pinned else None)


@dataclass(frozen=True)
class VerifiedSignature:
    """A signature that passed every check: its certificate and copies of its References,
    which a signed Acknowledgment carries back (ebMS 2.0 section 6.3.2)."""

    certificate: x509.Certificate
    references: tuple[etree._Element, ...]


def certificate_oin(certificate: x509.Certificate) -> str | None:
    serials = certificate.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
    return str(serials[0].value) if serials else None


# --- the parts libxmlsec may read ---------------------------------------------------------------

_parts = threading.local()


@contextmanager
def _serving(parts: Mapping[str, bytes]) -> Iterator[None]:
    """Lets this thread's signature operation read `cid:` References from `parts`."""
    _parts.current = parts
    try:
        yield
    finally:
        _parts.current = None


def _cid_match(uri: bytes) -> bool:
    # Only cid: URIs of the message at hand; anything else (file:, http:) fails to open.
    return uri.startswith(b"cid:") and getattr(_parts, "current", None) is not None


def _cid_open(uri: bytes) -> io.BytesIO | None:
    content = _parts.current.get(uri.decode("utf-8", "replace")[4:])
    return None if content is None else io.BytesIO(content)


def _cid_read(stream: io.BytesIO, buffer: memoryview) -> int:
    return stream.readinto(buffer)


def _cid_close(stream: io.BytesIO) -> None:
    stream.close()


# Process-wide: libxmlsec's default callbacks (local files, HTTP, FTP) are removed, so no
# signature, ours or a peer's, can make this process read anything but a message part.
xmlsec.cleanup_callbacks()
xmlsec.register_callbacks(_cid_match, _cid_open, _cid_read, _cid_close)


# --- signing ------------------------------------------------------------------------------------


def sign(envelope: bytes, parts: Sequence[tuple[str, bytes]], key: SigningKey) -> bytes:
    """The envelope with a ds:Signature appended to its Header, over the envelope and every
    payload part (Content-ID without brackets, content as sent)."""
    document = parse_untrusted(envelope)
    header = document.find(_HEADER)
    if header is None:
        raise ValueError("an ebMS envelope to sign needs a SOAP Header")
    signature = xmlsec.template.create(
        document, _C.TransformExclC14N, _C.TransformRsaSha256, ns="ds"
    )
    header.append(signature)
    whole = xmlsec.template.add_reference(signature, _C.TransformSha256, uri="")
    xmlsec.template.add_transform(whole, _C.TransformEnveloped)
    xpath = xmlsec.template.add_transform(whole, _C.TransformXPath)
    etree.SubElement(xpath, f"{_DS}XPath", nsmap={"SOAP": SOAP_ENV}).text = NEXT_MSH_FILTER
    xmlsec.template.add_transform(whole, _C.TransformExclC14N)
    for cid, _ in parts:
        xmlsec.template.add_reference(signature, _C.TransformSha256, uri=f"cid:{cid}")
    xmlsec.template.add_x509_data(xmlsec.template.ensure_key_info(signature))
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(key.key_pem(), _C.KeyDataFormatPem)
    context.key.load_cert_from_memory(
        key.certificate.public_bytes(serialization.Encoding.PEM), _C.KeyDataFormatCertPem
    )
    with _serving(dict(parts)):
        context.sign(signature)
    data: bytes = etree.tostring(document, xml_declaration=True, encoding="utf-8")
    return data


# --- verifying ----------------------------------------------------------------------------------


def _signature_of(envelope: etree._Element) -> etree._Element:
    header = envelope.find(_HEADER)
    found = [] if header is None else header.findall(f"{_DS}Signature")
    if not found:
        raise SecurityFailure(
            "het bericht is niet ondertekend: de CPA eist een ds:Signature in de SOAP Header",
            _SIGNATURE_LOCATION,
        )
    if len(found) > 1:
        raise SecurityFailure(
            f"de SOAP Header bevat {len(found)} ds:Signature-elementen; ebMS staat er één toe",
            _SIGNATURE_LOCATION,
        )
    return found[0]


def _refuse_unsigned_blocks(envelope: etree._Element) -> None:
    """The envelope Reference leaves out elements meant for the next MSH (ebMS 2.0 §4.1.3).
    Digikoppeling has no intermediaries, so such an element is only unsigned content that the
    rest of the adapter would read: it is refused rather than ignored."""
    actor = f"{{{SOAP_ENV}}}actor"
    for element in envelope.iter():
        if isinstance(element.tag, str) and element.get(actor) in (NEXT_MSH, SOAP_NEXT):
            raise SecurityFailure(
                f"{etree.QName(element).localname} is voor de volgende MSH bedoeld en dus niet "
                "ondertekend; Digikoppeling kent geen tussenstations",
                f"//{etree.QName(element).localname}",
            )


def _algorithm(parent: etree._Element, name: str) -> str:
    element = parent.find(f"{_DS}{name}")
    return "" if element is None else element.get("Algorithm") or ""


def _check_references(
    signed_info: etree._Element, parts: Mapping[str, bytes]
) -> list[etree._Element]:
    """Every payload part referenced once, the envelope once, nothing else; strong digests."""
    references: list[etree._Element] = list(signed_info.iterfind(f"{_DS}Reference"))
    covered: set[str] = set()
    whole = 0
    for reference in references:
        uri = reference.get("URI")
        digest = _algorithm(reference, "DigestMethod")
        where = f"{_SIGNATURE_LOCATION}/SignedInfo/Reference[@URI='{uri}']"
        if digest not in DIGEST_METHODS:
            raise SecurityFailure(
                f"Reference {uri!r} gebruikt DigestMethod {digest or '(geen)'}; "
                "toegestaan zijn SHA-256, SHA-384 en SHA-512",
                where,
            )
        transforms = [
            t.get("Algorithm") or "" for t in reference.iterfind(f"{_DS}Transforms/{_DS}Transform")
        ]
        if uri == "":
            whole += 1
            if ENVELOPED not in transforms or transforms[-1:] != [EXC_C14N]:
                raise SecurityFailure(
                    'de Reference URI="" moet de transforms enveloped-signature en als '
                    "laatste exclusive C14N hebben (ebMS 2.0 §4.1.3)",
                    where,
                )
            unknown = set(transforms) - {ENVELOPED, XPATH, EXC_C14N}
            if unknown:
                raise SecurityFailure(
                    f'de Reference URI="" gebruikt transform {sorted(unknown)[0]}, '
                    "niet toegestaan in ebMS",
                    where,
                )
        elif uri is not None and uri.startswith("cid:"):
            cid = uri[4:]
            if cid not in parts:
                raise SecurityFailure(
                    f"Reference {uri} verwijst naar geen MIME-deel van dit bericht", where
                )
            if cid in covered:
                raise SecurityFailure(f"Reference {uri} komt twee keer voor", where)
            if transforms:
                raise SecurityFailure(
                    f"Reference {uri} mag geen transforms hebben: de digest gaat over de "
                    "inhoud van het deel zoals verzonden",
                    where,
                )
            covered.add(cid)
        else:
            raise SecurityFailure(
                f'Reference {uri!r} is niet toegestaan: alleen URI="" (de envelope) en '
                "cid: (de MIME-delen)",
                where,
            )
    if whole != 1:
        raise SecurityFailure(
            'de handtekening moet de envelope precies één keer dekken (Reference URI="")',
            f"{_SIGNATURE_LOCATION}/SignedInfo",
        )
    missing = [cid for cid in parts if cid not in covered]
    if missing:
        raise SecurityFailure(
            f"de handtekening dekt MIME-deel cid:{missing[0]} niet; "
            "elk payload-deel moet een ds:Reference hebben",
            f"cid:{missing[0]}",
        )
    return references


def _key_info_certificates(signature: etree._Element) -> list[x509.Certificate]:
    certificates = []
    for element in signature.iterfind(f"{_DS}KeyInfo/{_DS}X509Data/{_DS}X509Certificate"):
        try:
            der = base64.b64decode("".join((element.text or "").split()), validate=True)
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise SecurityFailure(
                "KeyInfo bevat een X509Certificate dat geen certificaat is",
                f"{_SIGNATURE_LOCATION}/KeyInfo",
            ) from None
    return certificates


def _signer_certificate(
    signature: etree._Element, signer: ExpectedSigner, anchors: TrustAnchors, now: datetime
) -> x509.Certificate:
    """The certificate the signature must verify with, by the rule in the module docstring."""
    in_message = _key_info_certificates(signature)
    if signer.certificate is not None:
        # Pinned by the CPA: the signature is checked with that key whatever KeyInfo says; a
        # KeyInfo naming another certificate only lets the refusal say whose it is.
        if in_message and in_message[0] != signer.certificate:
            raise SecurityFailure(
                f"ondertekend met het certificaat van OIN {certificate_oin(in_message[0])} "
                f"({in_message[0].subject.rfc4514_string()}), maar de CPA noemt dat van "
                f"{signer.oin} ({signer.certificate.subject.rfc4514_string()})",
                f"{_SIGNATURE_LOCATION}/KeyInfo",
            )
        return signer.certificate
    if not in_message:
        raise SecurityFailure(
            "KeyInfo bevat geen X509Certificate van de ondertekenaar",
            f"{_SIGNATURE_LOCATION}/KeyInfo",
        )
    leaf = in_message[0]
    oin = certificate_oin(leaf)
    if oin != signer.oin:
        raise SecurityFailure(
            f"ondertekend met het certificaat van OIN {oin or '(geen)'}, maar de afzender "
            f"is {signer.oin}",
            f"{_SIGNATURE_LOCATION}/KeyInfo",
        )
    try:
        anchors.check(leaf, now)  # chain to our roots, validity, keyUsage, CRL
    except WsSecurityFault as fault:
        raise SecurityFailure(
            f"het ondertekenende certificaat ({leaf.subject.rfc4514_string()}) wordt niet "
            f"aanvaard: {fault.message}",
            f"{_SIGNATURE_LOCATION}/KeyInfo",
        ) from None
    return leaf


def verify(
    envelope: etree._Element,
    parts: Mapping[str, bytes],
    signer: ExpectedSigner,
    anchors: TrustAnchors,
    now: datetime,
) -> VerifiedSignature:
    """Check the message's signature by every rule of the module docstring; `parts` are the
    payload parts by Content-ID, as received. Raises SecurityFailure."""
    signature = _signature_of(envelope)
    _refuse_unsigned_blocks(envelope)
    signed_info = signature.find(f"{_DS}SignedInfo")
    if signed_info is None:
        raise SecurityFailure("ds:Signature zonder SignedInfo", _SIGNATURE_LOCATION)
    c14n = _algorithm(signed_info, "CanonicalizationMethod")
    if c14n != EXC_C14N:
        raise SecurityFailure(
            f"CanonicalizationMethod {c14n or '(geen)'} is niet toegestaan; "
            f"Digikoppeling eist exclusive C14N ({EXC_C14N})",
            f"{_SIGNATURE_LOCATION}/SignedInfo/CanonicalizationMethod",
        )
    method = _algorithm(signed_info, "SignatureMethod")
    if method not in SIGNATURE_METHODS:
        raise SecurityFailure(
            f"SignatureMethod {method or '(geen)'} is niet toegestaan; "
            "toegestaan zijn RSA-SHA256, RSA-SHA384 en RSA-SHA512",
            f"{_SIGNATURE_LOCATION}/SignedInfo/SignatureMethod",
        )
    references = _check_references(signed_info, parts)
    certificate = _signer_certificate(signature, signer, anchors, now)
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(
        certificate.public_bytes(serialization.Encoding.PEM), _C.KeyDataFormatCertPem
    )
    # Belt and braces: libxmlsec itself refuses any algorithm the checks above did not allow.
    for transform in (*SIGNATURE_METHODS.values(), _C.TransformExclC14N):
        context.enable_signature_transform(transform)
    for transform in (
        *DIGEST_METHODS.values(),
        _C.TransformEnveloped,
        _C.TransformXPath,
        _C.TransformExclC14N,
    ):
        context.enable_reference_transform(transform)
    try:
        with _serving(parts):
            context.verify(signature)
    except xmlsec.Error:
        raise SecurityFailure(
            _which_digest_fails(signature, parts)
            or "de handtekening klopt niet met het certificaat van de afzender",
            _SIGNATURE_LOCATION,
        ) from None
    return VerifiedSignature(certificate, tuple(copy.deepcopy(r) for r in references))


def _which_digest_fails(signature: etree._Element, parts: Mapping[str, bytes]) -> str | None:
    """Say which part was changed, when a cid: digest no longer matches (the common case)."""
    for reference in signature.iterfind(f"{_DS}SignedInfo/{_DS}Reference"):
        uri = reference.get("URI") or ""
        if not uri.startswith("cid:"):
            continue
        digest = hashes.Hash(DIGEST_HASHES[_algorithm(reference, "DigestMethod")]())
        digest.update(parts[uri[4:]])
        expected = "".join((reference.findtext(f"{_DS}DigestValue") or "").split())
        if base64.b64encode(digest.finalize()).decode("ascii") != expected:
            return f"MIME-deel {uri} is gewijzigd: de digest klopt niet met de handtekening"
    return None


def signed_references(envelope: etree._Element) -> tuple[etree._Element, ...]:
    """Copies of the ds:Reference elements of a message's header signature (none: empty)."""
    header = envelope.find(_HEADER)
    signature = None if header is None else header.find(f"{_DS}Signature")
    if signature is None:
        return ()
    return tuple(copy.deepcopy(r) for r in signature.iterfind(f"{_DS}SignedInfo/{_DS}Reference"))


# --- encryption ---------------------------------------------------------------------------------


def encrypt(
    content: bytes,
    content_type: str,
    content_id: str,
    certificate: x509.Certificate,
    algorithm: str = AES256_GCM,
) -> bytes:
    """One payload part as an xenc:EncryptedData document for the holder of `certificate`."""
    key, cipher_value = xmlenc.encrypt_data(content, algorithm)
    wrapped = xmlenc.wrap_key(key, certificate)

    data = etree.Element(f"{_XENC}EncryptedData", nsmap={"xenc": XENC, "ds": DS})
    data.set("Id", content_id)
    data.set("MimeType", content_type)
    data.set("Type", f"{XENC}Content")
    etree.SubElement(data, f"{_XENC}EncryptionMethod", Algorithm=algorithm)
    key_info = etree.SubElement(data, f"{_DS}KeyInfo")
    encrypted_key = etree.SubElement(key_info, f"{_XENC}EncryptedKey")
    xmlenc.add_key_transport(encrypted_key)
    recipient = etree.SubElement(etree.SubElement(encrypted_key, f"{_DS}KeyInfo"), f"{_DS}X509Data")
    etree.SubElement(recipient, f"{_DS}X509Certificate").text = base64.b64encode(
        certificate.public_bytes(serialization.Encoding.DER)
    ).decode("ascii")
    xmlenc.add_cipher_data(encrypted_key, wrapped)
    xmlenc.add_cipher_data(data, cipher_value)
    encrypted: bytes = etree.tostring(data, xml_declaration=True, encoding="utf-8")
    return encrypted


def decrypt(data: bytes, key: SigningKey, where: str = "EncryptedData") -> tuple[str, bytes]:
    """(media type, content) of a part encrypted for `key`; SecurityFailure says what is
    wrong (not encrypted, an algorithm not allowed, not for our key, changed on the way)."""
    try:
        document = parse_untrusted(data)
    except Exception:
        raise SecurityFailure(
            f"{where} is geen xenc:EncryptedData: de CPA eist versleutelde payloads", where
        ) from None
    if document.tag != f"{_XENC}EncryptedData":
        raise SecurityFailure(
            f"{where} is niet versleuteld (xenc:EncryptedData), terwijl de CPA dat eist", where
        )
    try:
        algorithm = xmlenc.data_algorithm(document, xmlenc.GCM)  # ebMS: no legacy CBC
        encrypted_key = document.find(f"{_DS}KeyInfo/{_XENC}EncryptedKey")
        if encrypted_key is None:
            raise SecurityFailure(f"{where}: KeyInfo bevat geen xenc:EncryptedKey", where)
        session_key = xmlenc.unwrap_key(encrypted_key, key)
        content = xmlenc.decrypt_data(document, algorithm, session_key)
    except XmlEncryptionRefused as refused:
        raise SecurityFailure(f"{where}: {refused.reason}", where) from None
    return (document.get("MimeType") or "application/octet-stream"), content


# --- a channel's whole rule, for both directions ------------------------------------------------


def seal(
    soap: bytes,
    parts: Sequence[tuple[str, str, bytes]],
    security: ChannelSecurity,
    key: SigningKey | None,
) -> tuple[bytes, list[tuple[str, str, bytes]]]:
    """What goes on the wire to a party whose channel has `security`: each payload part
    (Content-ID, Content-Type, content) encrypted for its certificate (-e), then the envelope
    signed over the parts as sent (-s, -e). Unsigned channels get everything unchanged."""
    if not security.sign:
        return soap, list(parts)
    if key is None:
        raise ValueError("this CPA channel is signed, but no ebMS signing key is configured")
    sent = list(parts)
    if security.encrypt:
        if security.encryption_certificate is None:
            raise ValueError(
                "this CPA channel is encrypted, but names no certificate to encrypt for"
            )
        recipient = x509.load_der_x509_certificate(security.encryption_certificate)
        algorithm = security.encryption_algorithm or AES256_GCM
        sent = [
            (cid, ENCRYPTED_PART_TYPE, encrypt(content, content_type, cid, recipient, algorithm))
            for cid, content_type, content in parts
        ]
    return sign(soap, [(cid, content) for cid, _, content in sent], key), sent


def payload_parts(package: Package) -> dict[str, bytes]:
    """The payload parts of a received message by Content-ID, as a signature covers them; a
    part without Content-ID cannot be covered, so it is refused."""
    parts: dict[str, bytes] = {}
    for number, part in enumerate(package.attachments, start=2):
        if part.content_id is None:
            raise SecurityFailure(
                f"MIME-deel {number} heeft geen Content-ID, dus geen handtekening kan het dekken",
                _SIGNATURE_LOCATION,
            )
        parts[part.content_id] = part.body
    return parts


def open_package(
    envelope: etree._Element,
    package: Package,
    security: ChannelSecurity,
    signer_oin: str,
    key: SigningKey | None,
    anchors: TrustAnchors | None,
    now: datetime,
) -> tuple[VerifiedSignature | None, Package]:
    """A received message checked by its channel's rule: the signature verified (-s, -e),
    then every payload part decrypted (-e). Returns the signature (None on an unsigned
    channel) and the package the business gets. Raises SecurityFailure."""
    if not security.sign:
        return None, package
    if key is None or anchors is None:
        # A configuration gap must not turn into accepting unchecked messages.
        raise SecurityFailure("ondertekende berichten kunnen hier nu niet worden gecontroleerd")
    verified = verify(
        envelope, payload_parts(package), signer_of(security, signer_oin), anchors, now
    )
    if not security.encrypt:
        return verified, package
    opened = []
    for part in package.attachments:
        where = cid_url(part.content_id or "")
        media, content = decrypt(part.body, key, where)
        media_type, params = parse_content_type(media, f"MimeType van {where}")
        opened.append(
            replace(
                part,
                content_type=media_type,
                params=MappingProxyType(params),
                headers=MappingProxyType({**part.headers, "content-type": media}),
                body=content,
            )
        )
    return verified, Package(package.soap, tuple(opened))


def verify_acknowledgment(
    acknowledgment: etree._Element,
    signer: ExpectedSigner,
    anchors: TrustAnchors,
    now: datetime,
    sent: etree._Element | None = None,
) -> VerifiedSignature:
    """A signed Acknowledgment: its own signature (it has no payload parts), and, when the
    message it acknowledges is at hand, the ds:Reference copies it carries must be those of
    our signature over that message (same URIs and digests)."""
    verified = verify(acknowledgment, {}, signer, anchors, now)
    if sent is None:
        return verified
    carried = {
        (r.get("URI"), "".join((r.findtext(f"{_DS}DigestValue") or "").split()))
        for r in acknowledgment.iterfind(f"{_HEADER}/{{{EB}}}Acknowledgment/{_DS}Reference")
    }
    ours = {
        (r.get("URI"), "".join((r.findtext(f"{_DS}DigestValue") or "").split()))
        for r in signed_references(sent)
    }
    if carried != ours:
        raise SecurityFailure(
            "de ondertekende Acknowledgment draagt niet de ds:Reference-elementen van het "
            "bevestigde bericht",
            "//Header/Acknowledgment/Reference",
        )
    return verified
