"""Fuzz target: an ebMS message, Content-Type and body, through the MIME parser and the header.

What `adapter/ebms/endpoint.py` does before the CPA and the database: split the package
(`parse_package`), hash every part, parse the SOAP part with the safe parser, read the ebMS
MessageHeader and resolve every Manifest reference; a refusal becomes the MessageError that
would answer it. Each attachment must also be found again by its own `cid:` URL.

Input: the HTTP Content-Type up to the first newline (read as Latin-1, as a WSGI server hands
it on), the body after it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from adapter.ebms.endpoint import as_ebms_error
from adapter.ebms.message import MessageHeader, message_error, read_header
from adapter.ebms.mime import cid_url, parse_package
from adapter.errors import AdapterError, EbmsError, Rejected
from adapter.soap.envelope import SOAP_ENV, body_hash, raw_hash
from adapter.soap.xml import parse_untrusted

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def fuzz_one(data: bytes) -> str:
    """One input; "accepted", or the name of the refusal that would answer it."""
    content_type, _, body = data.partition(b"\n")
    header: MessageHeader | None = None
    try:
        package = parse_package(content_type.decode("latin-1"), body)
        for part in package.attachments:
            raw_hash(part.body)
            if part.content_id is not None:
                found = package.attachment(cid_url(part.content_id))
                if found.content_id != part.content_id:
                    raise AssertionError(f"cid:{part.content_id!r} finds {found.content_id!r}")
        envelope = parse_untrusted(package.soap.body)
        soap_body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if soap_body is not None:
            body_hash(soap_body)
        header = read_header(envelope)
        for cid in header.manifest:
            package.attachment(cid)
    except EbmsError as error:
        message_error(header, error, NOW)
        return type(error).__name__
    except Rejected as error:
        message_error(header, as_ebms_error(error), NOW)
        return type(error).__name__
    except AdapterError as error:
        return type(error).__name__
    return "accepted"
