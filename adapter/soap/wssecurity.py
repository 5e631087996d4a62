"""WS-Security for Digikoppeling WUS 2W-be-S and 2W-be-SE (WB001-WB014).

A request of an organisation with one of these profiles must carry one wsse:Security header
with a wsu:Timestamp and one XMLDSig signature by an X.509 token (a BinarySecurityToken by
direct reference, WB010). It is accepted only when every part WB004 names (soap:Body, the
Timestamp and each WS-Addressing header) is covered by a Reference of its own to that very
element, with exclusive c14n and SHA-256 or stronger under RSA (WB007, SIGN001-004); when
the Timestamp is fresh; and when the certificate chains to our trust anchors, is not revoked,
may sign, and carries the OIN of the organisation the TLS client certificate authenticated.
A signature that merely validates proves nothing: it might cover a copy of the Body kept
elsewhere in the envelope (a wrapping attack), or have been made by another organisation.

2W-be-SE adds an encrypted Body (WB005): decrypted first, then verified (WB006); the answer's
Body is encrypted for the certificate that signed the request (WB012).

The XMLDSig work is libxmlsec1's (python-xmlsec): verifying the references and the signature,
and signing answers. Encryption is `cryptography`'s, through the XML Encryption primitives
of `adapter.soap.xmlenc` (AES-GCM, RSA-OAEP), laid out here: the WS-Security layout keeps the
EncryptedKey in the Security header, pointing at the Body's EncryptedData by a ReferenceList,
which xmlsec's EncryptionContext does not resolve itself, and the plaintext must go through
our own safe parser, never libxml2's in-context parse.
"""

from __future__ import annotations

import base64
import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from threading import Lock

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)
from lxml import etree

from adapter.errors import (
    WsSecurityFault,
    WssExpired,
    WssFailedAuthentication,
    WssFailedCheck,
    WssInvalidSecurity,
    WssInvalidToken,
    WssTokenUnavailable,
    WssUnsupportedAlgorithm,
    XmlEncryptionKind,
    XmlEncryptionRefused,
)
from adapter.pki.identity import read_identity
from adapter.soap import xmlenc
from adapter.soap.addressing import WSA
from adapter.soap.envelope import SOAP_ENV, Envelope, body_hash, envelope_of
from adapter.soap.xml import DEFAULT_LIMITS, XmlLimits, parse_untrusted
from adapter.soap.xmlenc import (
    AES256_GCM,
    CONTENT,
    DIGEST_METHODS,
    ELEMENT,
    EXC_C14N,
    RSA_SHA256,
    SHA256,
    SIGNATURE_METHODS,
)
from adapter.soap.xmlenc import DSIG as DSIG
from adapter.soap.xmlenc import XENC as XENC
from adapter.xmltime import utc_millis

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
WSSE11 = "http://docs.oasis-open.org/wss/oasis-wss-wssecurity-secext-1.1.xsd"
X509V3 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-x509-token-profile-1.0#X509v3"
BASE64_BINARY = (
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
)

_WSU_ID = f"{{{WSU}}}Id"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"
_DS, _WSSE, _WSU, _XENC = f"{{{DSIG}}}", f"{{{WSSE}}}", f"{{{WSU}}}", f"{{{XENC}}}"

# WUS decrypts AES-CBC from legacy senders (ENC001-003 ask GCM; we answer in GCM only).
_ACCEPTED_DATA = xmlenc.GCM | xmlenc.LEGACY_CBC
# What a refusal of the shared XML Encryption primitives is in WS-Security terms.
_ENCRYPTION_FAULTS: dict[XmlEncryptionKind, type[WsSecurityFault]] = {
    "algorithm": WssUnsupportedAlgorithm,
    "not-for-our-key": WssFailedCheck,
    "malformed": WssInvalidSecurity,
    "tampered": WssFailedCheck,
}
_MIN_RSA_BITS = 2048
_RESPONSE_TTL = timedelta(minutes=5)

# What to fix, said once for every refusal of a signed part.
_SIGN_WHAT = (
    "onderteken soap:Body, wsu:Timestamp en elke WS-Addressing-header elk met een eigen Reference"
)


@dataclass(frozen=True)
class WssCredentials:
    """Our own WS-Security key: signs answers, decrypts 2W-be-SE requests (`[wss]` in conf)."""

    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @classmethod
    def from_files(cls, key_file: Path, cert_file: Path) -> WssCredentials:
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            # Digikoppeling signs and transports keys with RSA only (SIGN004, ENC004).
            raise ValueError(f"{key_file}: the WS-Security key must be RSA")
        certificate = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
        if certificate.public_key() != key.public_key():
            raise ValueError(f"{cert_file}: the certificate does not belong to {key_file}")
        return cls(key, certificate)

    def key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


@dataclass
class SignerTrust:
    """What a request's signing certificate must chain to: the TLS trust anchors and
    intermediates, and the CRL file (read again when the scheduler refreshed it)."""

    trust_anchors: Path
    intermediates: Path
    crl: Path | None
    clock_skew: timedelta
    max_age: timedelta  # a Timestamp without Expires is stale this long after Created
    _anchors: tuple[list[x509.Certificate], list[x509.Certificate]] | None = field(
        default=None, init=False, repr=False
    )
    _crls: tuple[float, list[x509.CertificateRevocationList]] | None = field(
        default=None, init=False, repr=False
    )
    _lock: Lock = field(default_factory=Lock, init=False, repr=False)

    def _roots_and_intermediates(
        self,
    ) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        # Read at the first signature, not when built: a process that never meets one (a
        # scheduler whose CPAs ask no signed acknowledgments) needs no trust files.
        with self._lock:
            if self._anchors is None:
                self._anchors = (
                    x509.load_pem_x509_certificates(self.trust_anchors.read_bytes()),
                    x509.load_pem_x509_certificates(self.intermediates.read_bytes()),
                )
            return self._anchors

    def check(self, certificate: x509.Certificate, now: datetime) -> None:
        """Refuse (FailedAuthentication) an untrusted, revoked or unfit signing certificate."""
        public_key = certificate.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey) or public_key.key_size < _MIN_RSA_BITS:
            raise WssUnsupportedAlgorithm(
                f"het ondertekenende certificaat heeft geen RSA-sleutel van minstens "
                f"{_MIN_RSA_BITS} bits; Digikoppeling ondertekent met RSA"
            )
        roots, intermediates = self._roots_and_intermediates()
        verifier = (
            PolicyBuilder()
            .store(Store(roots))
            .time(now)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                # Key usage is checked below; a signing certificate need not say clientAuth.
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            chain = verifier.verify(certificate, intermediates).chain
        except VerificationError as error:
            raise WssFailedAuthentication(
                "het ondertekenende certificaat is niet geldig of niet uitgegeven onder een "
                f"vertrouwde PKIoverheid-root ({error}); onderteken met uw PKIoverheid-certificaat"
            ) from None
        try:
            usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or not usage.digital_signature:
            raise WssFailedAuthentication(
                "het ondertekenende certificaat mag niet ondertekenen (keyUsage digitalSignature "
                "ontbreekt)"
            )
        if self.crl is not None and len(chain) > 1:
            self._check_revocation(certificate, chain[1], now)

    def _check_revocation(
        self, certificate: x509.Certificate, issuer: x509.Certificate, now: datetime
    ) -> None:
        # As strict as the TLS handshake (VERIFY_CRL_CHECK_LEAF): without a current CRL of
        # the issuing CA, whether the certificate is revoked is unknown, so it is refused.
        current = [
            crl
            for crl in self._revocation_lists()
            if crl.issuer == issuer.subject
            and crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            and (crl.next_update_utc is None or crl.next_update_utc >= now)
        ]
        if not current:
            raise WssFailedAuthentication(
                f"geen geldige CRL van {issuer.subject.rfc4514_string()}, de uitgever van het "
                "ondertekenende certificaat; de beheerder moet tls.crl bijwerken"
            )
        if any(
            crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            for crl in current
        ):
            raise WssFailedAuthentication(
                f"het ondertekenende certificaat (serienummer {certificate.serial_number:x}) "
                "is ingetrokken"
            )

    def _revocation_lists(self) -> list[x509.CertificateRevocationList]:
        if self.crl is None:
            return []
        mtime = self.crl.stat().st_mtime
        with self._lock:
            if self._crls is None or self._crls[0] != mtime:
                marker = b"-----BEGIN X509 CRL-----"
                blocks = self.crl.read_bytes().split(marker)[1:]
                self._crls = (mtime, [x509.load_pem_x509_crl(marker + b) for b in blocks])
            return self._crls[1]


@dataclass(frozen=True)
class WsSecurity:
    """Everything the WUS endpoint needs for 2W-be-S and 2W-be-SE."""

    credentials: WssCredentials
    trust: SignerTrust


@dataclass(frozen=True)
class VerifiedRequest:
    """What a verified request's signature proves, for the answer."""

    certificate: x509.Certificate  # who signed; a 2W-be-SE answer is encrypted for it
    signature_value: str  # the SignatureValue as sent: the answer's SignatureConfirmation


# --- reading a request --------------------------------------------------------------------


def security_header(envelope: Envelope) -> etree._Element:
    """The one wsse:Security header block addressed to us (no actor), or InvalidSecurity."""
    found = [h for h in envelope.headers if h.tag == f"{_WSSE}Security"]
    if not found:
        raise WssInvalidSecurity(
            "wsse:Security ontbreekt; deze organisatie gebruikt Digikoppeling "
            f"2W-be-S of 2W-be-SE: {_SIGN_WHAT}"
        )
    ours = [h for h in found if h.get(f"{{{SOAP_ENV}}}actor") is None]
    if len(ours) != 1:
        raise WssInvalidSecurity("stuur precies één wsse:Security-header zonder actor")
    return ours[0]


def decrypt_body(
    envelope: Envelope,
    credentials: WssCredentials,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> Envelope:
    """The envelope with its Body decrypted in place (WB005/WB006), or the fault saying why not.

    The Body must hold one xenc:EncryptedData (Content or Element) whose key is an
    xenc:EncryptedKey for our certificate, RSA-OAEP; data AES-GCM (AES-CBC only decrypted).
    """
    security = security_header(envelope)
    encrypted = envelope.payload
    if encrypted.tag != f"{_XENC}EncryptedData":
        raise WssInvalidSecurity(
            "de Body is niet versleuteld; deze organisatie gebruikt Digikoppeling 2W-be-SE: "
            "versleutel de inhoud van soap:Body (xenc:EncryptedData) voor ons certificaat"
        )
    kind = encrypted.get("Type", CONTENT)
    if kind not in (CONTENT, ELEMENT):
        raise WssInvalidSecurity(f"xenc:EncryptedData Type {kind} wordt niet ondersteund")
    try:
        algorithm = xmlenc.data_algorithm(encrypted, _ACCEPTED_DATA)
        session_key = xmlenc.unwrap_key(_encrypted_key_for(encrypted, security), credentials)
        plaintext = xmlenc.decrypt_data(encrypted, algorithm, session_key)
    except XmlEncryptionRefused as refused:
        raise _ENCRYPTION_FAULTS[refused.kind](refused.reason) from None
    body = envelope.body
    # Parsed inside an element declaring the Body's namespaces: the plaintext may use
    # prefixes declared on the Envelope.
    wrapper = etree.tostring(etree.Element("wrapper", nsmap=dict(body.nsmap)))
    document = wrapper[: -len(b"/>")] + b">" + plaintext + b"</wrapper>"
    # The plaintext is the sender's XML like any other: our parser, our limits.
    parsed = parse_untrusted(document, limits)
    if parsed.text and parsed.text.strip():
        raise WssFailedCheck("de ontsleutelde Body bevat tekst buiten elementen")
    # Whitespace around the payload stays as it was signed: the Body's digest covers it.
    if kind == ELEMENT:
        if len(parsed) != 1:
            raise WssFailedCheck("een versleuteld Element bevat precies één element")
        element = parsed[0]
        element.tail = encrypted.tail
        body.replace(encrypted, element)
    else:
        for child in list(body):
            body.remove(child)
        body.text = parsed.text
        body.extend(list(parsed))
    return envelope_of(envelope.root)


def verify_request(
    envelope: Envelope, trust: SignerTrust, party_oin: str, now: datetime
) -> VerifiedRequest:
    """Check the request's wsse:Security (see the module docstring); raise the WS-Security
    fault that says what to fix, or return what the signature proves."""
    security = security_header(envelope)
    timestamp = _one(security, f"{_WSU}Timestamp", "wsu:Timestamp")
    _check_timestamp(timestamp, trust, now)
    signature = _one(security, f"{_DS}Signature", "ds:Signature")
    ids = _ids(envelope.root)
    referenced = _check_signed_info(signature, ids)
    required = [("soap:Body", envelope.body), ("wsu:Timestamp", timestamp)]
    required += [
        (f"wsa:{etree.QName(h).localname}", h)
        for h in envelope.headers
        if etree.QName(h).namespace == WSA
    ]
    for name, element in required:
        element_id = element.get(_WSU_ID)
        if element_id is None or element_id not in referenced:
            raise WssFailedCheck(f"{name} is niet ondertekend; {_SIGN_WHAT} (wsu:Id)")
    certificate = _token_certificate(signature, security, ids)
    try:
        key = xmlsec.Key.from_memory(
            certificate.public_bytes(serialization.Encoding.PEM),
            xmlsec.constants.KeyDataFormatCertPem,
        )
        context = xmlsec.SignatureContext()
        context.key = key
        for element in ids.values():
            if element.get(_WSU_ID) is not None:
                context.register_id(element, "Id", WSU)
        context.verify(signature)
    except xmlsec.Error:
        raise WssFailedCheck(
            "de handtekening klopt niet: een ondertekend deel is na het ondertekenen gewijzigd, "
            "of de handtekening is niet met de sleutel van het certificaat gezet"
        ) from None
    trust.check(certificate, now)
    identity = read_identity(certificate.public_bytes(serialization.Encoding.DER))
    if identity.oin != party_oin:
        raise WssFailedAuthentication(
            f"het ondertekenende certificaat hoort bij OIN {identity.oin or 'onbekend'}, niet "
            f"bij {party_oin} van het TLS-certificaat; onderteken met uw eigen certificaat"
        )
    value = "".join((signature.findtext(f"{_DS}SignatureValue") or "").split())
    return VerifiedRequest(certificate, value)


def signed_body_hash(body: etree._Element) -> str:
    """The Body's hash without the wsu:Id its signature gave it: what a repeat is compared
    on (adapter.soap.replay), since a sender that signs a request again picks a new Id."""
    copied = copy.deepcopy(body)
    copied.attrib.pop(_WSU_ID, None)
    return body_hash(copied)


def _one(parent: etree._Element, tag: str, name: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        missing = "ontbreekt" if not found else "staat er meer dan eens"
        raise WssInvalidSecurity(f"{name} {missing} in wsse:Security; stuur er precies één")
    return found[0]


def _moment(timestamp: etree._Element, tag: str, name: str) -> datetime | None:
    element = timestamp.find(f"{_WSU}{tag}")
    if element is None:
        return None
    text = (element.text or "").strip()
    if not text.endswith("Z"):
        raise WssInvalidSecurity(
            f"wsu:{name} {text!r} is geen UTC-tijd; schrijf bijvoorbeeld "
            "2026-12-01T12:00:00Z (WB002)"
        )
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise WssInvalidSecurity(f"wsu:{name} {text!r} is geen xs:dateTime") from None


def _check_timestamp(timestamp: etree._Element, trust: SignerTrust, now: datetime) -> None:
    created = _moment(timestamp, "Created", "Created")
    if created is None:
        raise WssInvalidSecurity("wsu:Timestamp heeft geen wsu:Created (WB002)")
    expires = _moment(timestamp, "Expires", "Expires")
    skew = trust.clock_skew
    if created > now + skew:
        raise WssExpired(
            f"wsu:Created {utc_millis(created)} ligt meer dan {skew.total_seconds():g} s in de "
            f"toekomst (nu {utc_millis(now)}); zet de klok van de verzender gelijk"
        )
    if expires is not None and expires < now - skew:
        raise WssExpired(f"wsu:Expires {utc_millis(expires)} is verstreken (nu {utc_millis(now)})")
    if created < now - trust.max_age - skew:
        raise WssExpired(
            f"wsu:Created {utc_millis(created)} is ouder dan "
            f"{trust.max_age.total_seconds():g} s (nu {utc_millis(now)}); onderteken elk "
            "verzoek vlak voor het versturen"
        )


def _ids(root: etree._Element) -> dict[str, etree._Element]:
    """Every wsu:Id and xml:id in the envelope; one value used twice is refused, so a
    Reference can only ever mean one element."""
    ids: dict[str, etree._Element] = {}
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for attribute in (_WSU_ID, _XML_ID):
            value = element.get(attribute)
            if value is None:
                continue
            if value in ids:
                raise WssInvalidSecurity(f"Id {value!r} staat meer dan eens in het bericht")
            ids[value] = element
    return ids


def _check_signed_info(signature: etree._Element, ids: dict[str, etree._Element]) -> set[str]:
    """The ids SignedInfo references, once its algorithms and transforms pass."""
    signed_info = signature.find(f"{_DS}SignedInfo")
    if signed_info is None:
        raise WssInvalidSecurity("ds:Signature heeft geen ds:SignedInfo")
    c14n = _algorithm(signed_info, "ds:CanonicalizationMethod", f"{_DS}CanonicalizationMethod")
    if c14n != EXC_C14N:
        raise WssUnsupportedAlgorithm(
            f"canonicalisatie {c14n} is niet toegestaan; gebruik {EXC_C14N} (WB007)"
        )
    method = _algorithm(signed_info, "ds:SignatureMethod", f"{_DS}SignatureMethod")
    if method not in SIGNATURE_METHODS:
        raise WssUnsupportedAlgorithm(
            f"handtekeningalgoritme {method} is niet toegestaan; gebruik {RSA_SHA256} "
            "(Digikoppeling: RSA met SHA-256 of sterker, geen SHA-1)"
        )
    referenced: set[str] = set()
    for reference in signed_info.iter(f"{_DS}Reference"):
        uri = reference.get("URI") or ""
        if not uri.startswith("#") or uri[1:] not in ids:
            raise WssInvalidSecurity(
                f"ds:Reference URI {uri!r} wijst niet naar een element met wsu:Id in dit bericht"
            )
        digest = _algorithm(reference, "ds:DigestMethod", f"{_DS}DigestMethod")
        if digest not in DIGEST_METHODS:
            raise WssUnsupportedAlgorithm(
                f"digest {digest} is niet toegestaan; gebruik {SHA256} (geen SHA-1)"
            )
        transforms = reference.find(f"{_DS}Transforms")
        for transform in transforms if transforms is not None else ():
            if isinstance(transform.tag, str) and transform.get("Algorithm") != EXC_C14N:
                raise WssUnsupportedAlgorithm(
                    f"transform {transform.get('Algorithm')} is niet toegestaan; alleen {EXC_C14N}"
                )
        referenced.add(uri[1:])
    return referenced


def _algorithm(parent: etree._Element, name: str, tag: str) -> str:
    element = parent.find(tag)
    value = element.get("Algorithm") if element is not None else None
    if not value:
        raise WssInvalidSecurity(f"{name} noemt geen Algorithm")
    return str(value)


def _token_certificate(
    signature: etree._Element, security: etree._Element, ids: dict[str, etree._Element]
) -> x509.Certificate:
    """The signing certificate: a BinarySecurityToken by direct reference (WB010), or an
    X509Certificate in KeyInfo, directly or in a SecurityTokenReference (as zeep's
    non-binary Signature sends it)."""
    key_info = signature.find(f"{_DS}KeyInfo")
    reference = (
        key_info.find(f"{_WSSE}SecurityTokenReference/{_WSSE}Reference")
        if key_info is not None
        else None
    )
    if reference is not None:
        uri = reference.get("URI") or ""
        token = ids.get(uri[1:]) if uri.startswith("#") else None
        if (
            token is None
            or token.tag != f"{_WSSE}BinarySecurityToken"
            or token.getparent() is not security
        ):
            raise WssTokenUnavailable(
                f"wsse:Reference {uri!r} wijst niet naar een wsse:BinarySecurityToken "
                "in wsse:Security"
            )
        if token.get("ValueType") != X509V3:
            raise WssInvalidToken(f"het token is geen X.509v3-certificaat (ValueType {X509V3})")
        if token.get("EncodingType", BASE64_BINARY) != BASE64_BINARY:
            raise WssInvalidToken(f"het token is niet Base64Binary gecodeerd ({BASE64_BINARY})")
        text = token.text
    else:
        embedded = (f"{_DS}X509Data", f"{_WSSE}SecurityTokenReference/{_DS}X509Data")
        certificate = next(
            (
                found
                for path in embedded
                if key_info is not None
                and (found := key_info.find(f"{path}/{_DS}X509Certificate")) is not None
            ),
            None,
        )
        if certificate is None:
            raise WssTokenUnavailable(
                "ds:KeyInfo verwijst niet naar het certificaat; gebruik "
                "wsse:SecurityTokenReference/wsse:Reference naar een wsse:BinarySecurityToken"
            )
        text = certificate.text
    try:
        return x509.load_der_x509_certificate(base64.b64decode("".join((text or "").split())))
    except ValueError:
        raise WssInvalidToken(
            "het certificaat in het token is geen geldig X.509-certificaat"
        ) from None


# --- decryption -----------------------------------------------------------------------------


def _encrypted_key_for(encrypted: etree._Element, security: etree._Element) -> etree._Element:
    """The xenc:EncryptedKey of the EncryptedData: in wsse:Security with a ReferenceList naming
    it, or in the EncryptedData's own KeyInfo."""
    data_id = encrypted.get("Id")
    for key in security.iter(f"{_XENC}EncryptedKey"):
        uris = {r.get("URI") for r in key.iterfind(f"{_XENC}ReferenceList/{_XENC}DataReference")}
        if data_id is not None and f"#{data_id}" in uris:
            return key
    inline = encrypted.find(f"{_DS}KeyInfo/{_XENC}EncryptedKey")
    if inline is not None:
        return inline
    candidates = [k for k in security if k.tag == f"{_XENC}EncryptedKey"]
    reference = encrypted.find(f"{_DS}KeyInfo/{_WSSE}SecurityTokenReference/{_WSSE}Reference")
    if reference is not None:
        uri = reference.get("URI") or ""
        candidates = [k for k in candidates if f"#{k.get('Id')}" == uri]
    if len(candidates) != 1:
        raise WssTokenUnavailable(
            "geen xenc:EncryptedKey voor de xenc:EncryptedData in wsse:Security; zet de "
            "sessiesleutel, versleuteld voor ons certificaat, in een xenc:EncryptedKey met een "
            "xenc:ReferenceList naar de EncryptedData"
        )
    return candidates[0]


# --- answering ------------------------------------------------------------------------------


def secure_response(
    root: etree._Element,
    security: WsSecurity,
    now: datetime,
    *,
    confirmation: str | None,
    encrypt_for: x509.Certificate | None = None,
) -> None:
    """Sign an answer envelope in place per 2W-be-S: Timestamp, our token, the request's
    SignatureValue confirmed (WB014), one Reference each for Body, the WS-A headers, the
    Timestamp and the SignatureConfirmation; then, for 2W-be-SE, encrypt the Body for
    `encrypt_for` (WB012)."""
    header = root.find(f"{{{SOAP_ENV}}}Header")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if body is None:
        raise ValueError("an envelope without Body")
    if header is None:
        header = etree.Element(f"{{{SOAP_ENV}}}Header")
        body.addprevious(header)
    block = etree.Element(f"{_WSSE}Security", nsmap={"wsse": WSSE, "wsu": WSU})
    block.set(f"{{{SOAP_ENV}}}mustUnderstand", "1")
    header.insert(0, block)
    timestamp = etree.SubElement(block, f"{_WSU}Timestamp")
    etree.SubElement(timestamp, f"{_WSU}Created").text = utc_millis(now)
    etree.SubElement(timestamp, f"{_WSU}Expires").text = utc_millis(now + _RESPONSE_TTL)
    certificate = security.credentials.certificate
    token = etree.SubElement(
        block, f"{_WSSE}BinarySecurityToken", EncodingType=BASE64_BINARY, ValueType=X509V3
    )
    token.text = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()
    signed = [body, timestamp, *(h for h in header if etree.QName(h).namespace == WSA)]
    if confirmation is not None:
        confirmed = etree.SubElement(
            block,
            f"{{{WSSE11}}}SignatureConfirmation",
            Value=confirmation,
            nsmap={"wsse11": WSSE11},
        )
        signed.append(confirmed)
    for element in (token, *signed):
        element.set(_WSU_ID, f"id-{uuid.uuid4()}")
    signature = xmlsec.template.create(
        root, xmlsec.constants.TransformExclC14N, xmlsec.constants.TransformRsaSha256, ns="ds"
    )
    block.append(signature)
    for element in signed:
        reference = xmlsec.template.add_reference(
            signature, xmlsec.constants.TransformSha256, uri=f"#{element.get(_WSU_ID)}"
        )
        xmlsec.template.add_transform(reference, xmlsec.constants.TransformExclC14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    token_reference = etree.SubElement(key_info, f"{_WSSE}SecurityTokenReference")
    etree.SubElement(
        token_reference, f"{_WSSE}Reference", URI=f"#{token.get(_WSU_ID)}", ValueType=X509V3
    )
    context = xmlsec.SignatureContext()
    context.key = xmlsec.Key.from_memory(
        security.credentials.key_pem(), xmlsec.constants.KeyDataFormatPem
    )
    for element in (token, *signed):
        context.register_id(element, "Id", WSU)
    context.sign(signature)
    if encrypt_for is not None:
        _encrypt_body(block, body, encrypt_for)


def _encrypt_body(block: etree._Element, body: etree._Element, recipient: x509.Certificate) -> None:
    """Body content under AES-256-GCM; the key RSA-OAEP (SHA-256, MGF1-SHA-256) for
    `recipient`, in an EncryptedKey before the signature, as a receiver processes in order."""
    plaintext = (body.text or "").encode() + b"".join(etree.tostring(child) for child in body)
    session_key, cipher_value = xmlenc.encrypt_data(plaintext, AES256_GCM)
    wrapped = xmlenc.wrap_key(session_key, recipient)
    data_id = f"ed-{uuid.uuid4()}"
    for child in list(body):
        body.remove(child)
    body.text = None
    data = etree.SubElement(
        body, f"{_XENC}EncryptedData", Id=data_id, Type=CONTENT, nsmap={"xenc": XENC}
    )
    etree.SubElement(data, f"{_XENC}EncryptionMethod", Algorithm=AES256_GCM)
    xmlenc.add_cipher_data(data, cipher_value)
    key = etree.Element(f"{_XENC}EncryptedKey", nsmap={"xenc": XENC})
    xmlenc.add_key_transport(key)
    key_info = etree.SubElement(key, f"{_DS}KeyInfo", nsmap={"ds": DSIG})
    issuer_serial = etree.SubElement(
        etree.SubElement(
            etree.SubElement(key_info, f"{_WSSE}SecurityTokenReference"), f"{_DS}X509Data"
        ),
        f"{_DS}X509IssuerSerial",
    )
    etree.SubElement(issuer_serial, f"{_DS}X509IssuerName").text = recipient.issuer.rfc4514_string()
    etree.SubElement(issuer_serial, f"{_DS}X509SerialNumber").text = str(recipient.serial_number)
    xmlenc.add_cipher_data(key, wrapped)
    references = etree.SubElement(key, f"{_XENC}ReferenceList")
    etree.SubElement(references, f"{_XENC}DataReference", URI=f"#{data_id}")
    block.insert(1, key)  # after the Timestamp, before the token and the signature
