"""`dk-adapter verify-receipt FILE`: what a signed Afleverbevestiging proves, or why it does not."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lxml import etree

from adapter.cli.base import Commands, ConfigLoader
from adapter.errors import ForbiddenMarkup, MalformedXml, XmlNotUtf8, XmlRejected


def _unreadable(file: str, error: XmlRejected) -> str:
    """Why FILE cannot hold a receipt, in the CLI's words rather than the parser's, which
    speaks to a SOAP peer."""
    if isinstance(error, MalformedXml):
        return f"{file} is not an XML document ({error.reason})"
    if isinstance(error, XmlNotUtf8):
        return f"{file} is not UTF-8 XML, as receipts and SOAP messages are ({error.reason})"
    if isinstance(error, ForbiddenMarkup):
        return f"{file} holds markup a receipt never has, so it is not read ({error.reason})"
    return f"{file} cannot be read as a receipt ({error.reason})"


def cmd_verify_receipt(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from adapter.receipts import ReceiptInvalid, verify
    from adapter.soap.xml import parse_untrusted

    trusted = Path(args.trusted_pem) if args.trusted_pem else config_loader(args).tls.trust_anchors
    try:
        document = parse_untrusted(Path(args.file).read_bytes())
    except XmlRejected as exc:
        print(f"error: {_unreadable(args.file, exc)}", file=sys.stderr)
        return 2
    try:
        verified = verify(document, trusted)
    except ReceiptInvalid as exc:
        print(f"INVALID: {exc}")
        return 1
    receipt = verified.receipt
    outcome = receipt.outcome
    print("VALID: signature, certificate chain and signer check out")
    print(f"  signed by          {verified.signer_subject}")
    print(f"  receipt            {receipt.receipt_id} (request {receipt.request_id})")
    print(f"  sender → receiver  {receipt.sender_oin} → {receipt.receiver_oin}")
    print(f"  received at (UTC)  {receipt.received_at.isoformat()}")
    print(f"  service/operation  {receipt.service} / {receipt.operation}")
    print(f"  message id         {receipt.message_ref or '-'}")
    print(f"  SHA-256 of Body    {receipt.body_hash}")
    if outcome.berichten:
        for bericht in outcome.berichten:
            print(f"  bericht {bericht.bericht_id}: {bericht.verwerkingscode}")
    elif outcome.accepted:
        print("  outcome            Geaccepteerd")
    else:
        print(f"  outcome            Geweigerd {outcome.code}: {outcome.reason}")
    if args.show:
        print(etree.tostring(verified.element, pretty_print=True, encoding="unicode"))
    return 0


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    check = commands.add_parser(
        "verify-receipt",
        help="verify a signed Afleverbevestiging and say what it proves",
    )
    check.add_argument("file", help="a SOAP response or a stand-alone receipt")
    check.add_argument("--trusted-pem", help="root certificate (default: tls.trust_anchors)")
    check.add_argument("--show", action="store_true", help="print the verified receipt XML")
    check.set_defaults(func=lambda args: cmd_verify_receipt(args, config_loader))
