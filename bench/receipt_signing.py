"""Microseconds per signed receipt: the signxml path the adapter used before, and
`ReceiptSigner` now (to an element, and to bytes), for ECDSA P-256 and RSA-3072, beside the
bare signature they contain.

Run: `.venv/bin/python bench/receipt_signing.py [--seconds N] [--json FILE]`.

Everything runs in this process, one thread, with a development hierarchy made here
(`adapter.pki.devca.new_hierarchy`): a receipt certificate of the TSP CA and its two
intermediates in KeyInfo, as the server signs. Every timed call signs the next of 1,000
`Receipt`s made beforehand (new UUIDs, current time): a request has its `Receipt` before it is
signed, so making one is not timed. Before timing, one receipt of each path is checked with
signxml's verifier (`adapter.receipts.verify`) and, when the `xmlsec1` binary is installed
(`make xmlsec1`), with `xmlsec1 --verify`. The goal of issue 12 is at most 100 µs per receipt;
nothing here asserts it.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding  # noqa: E402
from lxml import etree  # noqa: E402
from signxml.algorithms import (  # noqa: E402
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
)
from signxml.signer import XMLSigner  # noqa: E402

from adapter.pki.devca import DevHierarchy, new_hierarchy  # noqa: E402
from adapter.receipts import BerichtUitkomst, Outcome, Receipt, ReceiptSigner, verify  # noqa: E402
from adapter.receipts.model import parse_own, to_element  # noqa: E402

RECEIVER = "00000004003214345001"
SENDER = "00000099000000002000"
GOAL_MICROSECONDS = 100.0
ID_ATTRIBUTE = ("--id-attr:Id", "Afleverbevestiging")


def _now_in_milliseconds() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def new_receipt(berichten: int = 0) -> Receipt:
    outcome = (
        Outcome(
            accepted=True,
            berichten=tuple(
                BerichtUitkomst(str(uuid.uuid4()), "Verwerkt") for _ in range(berichten)
            ),
        )
        if berichten
        else Outcome.accept()
    )
    return Receipt(
        request_id=str(uuid.uuid4()),
        receiver_oin=RECEIVER,
        sender_oin=SENDER,
        # Receipts carry milliseconds: a verified receipt equals one made with them only.
        received_at=_now_in_milliseconds(),
        message_ref=f"urn:uuid:{uuid.uuid4()}",
        service="ValidateAbonnementen",
        operation="ValidateAbonnementen",
        body_hash="47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        outcome=outcome,
    )


class SignxmlPath:
    """How `ReceiptSigner` signed before: signxml's XMLSigner with the parsed certificates."""

    def __init__(self, signer: ReceiptSigner) -> None:
        self.signer = signer
        self._xml_signer = XMLSigner(
            signature_algorithm=SignatureMethod.ECDSA_SHA256
            if signer.algorithm == "ecdsa-sha256"
            else SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )

    def sign(self, receipt: Receipt) -> etree._Element:
        signed: etree._Element = self._xml_signer.sign(
            to_element(receipt),
            key=self.signer.private_key,
            cert=self.signer.certificates,
            reference_uri=f"#{receipt.xml_id}",
            id_attribute="Id",
        )
        return signed


def microseconds(operation: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Mean µs per call over about `seconds`, and the number of calls."""
    for _ in range(20):
        operation()  # lazy imports, caches, the allocator's first pages
    calls, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            operation()
        calls += 50
        now = time.perf_counter()
        if now >= deadline:
            return (now - start) / calls * 1e6, calls


def xmlsec1_verifies(element: etree._Element, root: Path, directory: Path) -> bool | None:
    """`xmlsec1 --verify` of the receipt as a document of its own; None without xmlsec1."""
    binary = shutil.which("xmlsec1")
    if binary is None:
        return None
    document = directory / f"{uuid.uuid4()}.xml"
    document.write_bytes(etree.tostring(element, xml_declaration=True, encoding="UTF-8"))
    result = subprocess.run(
        [binary, "--verify", "--trusted-pem", str(root), *ID_ATTRIBUTE, str(document)],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def measure(
    hierarchy: DevHierarchy,
    algorithm: str,
    key_type: str,
    root: Path,
    directory: Path,
    seconds: float,
) -> dict[str, Any]:
    """The figures of one algorithm, and under "failures" what did not verify."""
    chain = [hierarchy.tsp.certificate, hierarchy.domain.certificate]
    data = os.urandom(600)  # about the size of a canonical SignedInfo
    failures: list[str] = []
    issued = hierarchy.tsp.issue_receipt_certificate(
        receiver_oin=RECEIVER,
        key_type=key_type,  # type: ignore[arg-type]
    )
    signer = ReceiptSigner(issued.private_key, [issued.certificate, *chain], algorithm)
    before = SignxmlPath(signer)
    key = issued.private_key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        bare: Callable[[], object] = lambda: key.sign(data, ec.ECDSA(hashes.SHA256()))  # noqa: E731
    else:
        bare = lambda: key.sign(data, padding.PKCS1v15(), hashes.SHA256())  # noqa: E731
    row: dict[str, Any] = {}
    paths: tuple[tuple[str, Callable[[Receipt], object]], ...] = (
        ("signxml", before.sign),
        ("receipt_signer", signer.sign),
        ("receipt_signer_bytes", signer.signed_xml),
    )
    for name, sign in paths:
        sample = new_receipt()
        made = sign(sample)
        signed = parse_own(made) if isinstance(made, bytes) else made
        signxml_ok = verify(signed, root).receipt == sample
        xmlsec_ok = xmlsec1_verifies(signed, root, directory)
        if not signxml_ok or xmlsec_ok is False:
            failures.append(f"{algorithm} {name}: a receipt did not verify")
        receipts = itertools.cycle([new_receipt() for _ in range(1000)])
        us, calls = microseconds(lambda sign=sign, made=receipts: sign(next(made)), seconds)  # type: ignore[misc]
        row[name] = {
            "microseconds_per_receipt": us,
            "receipts": calls,
            "verified_by_signxml": signxml_ok,
            "verified_by_xmlsec1": xmlsec_ok,
        }
    batch_us, batch_calls = microseconds(lambda: signer.signed_xml(new_receipt(1000)), seconds)
    row["receipt_signer_1000_berichten"] = {
        "microseconds_per_receipt": batch_us,
        "receipts": batch_calls,
    }
    bare_us, bare_calls = microseconds(bare, seconds)
    row["bare_signature"] = {"microseconds": bare_us, "signatures": bare_calls}
    row["speed_up"] = (
        row["signxml"]["microseconds_per_receipt"]
        / row["receipt_signer_bytes"]["microseconds_per_receipt"]
    )
    row["failures"] = failures
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="per figure (default 2)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    hierarchy = new_hierarchy("Bench")
    figures: dict[str, Any] = {
        "setup": {
            "seconds": args.seconds,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "algorithms": {},
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-receipt-signing-") as temp:
        directory = Path(temp)
        root = directory / "root.pem"
        root.write_bytes(hierarchy.root_pem())
        for algorithm, key_type in (("ecdsa-sha256", "ecdsa-p256"), ("rsa-sha256", "rsa-3072")):
            row = measure(hierarchy, algorithm, key_type, root, directory, args.seconds)
            failures += row.pop("failures")
            figures["algorithms"][algorithm] = row

    print(report(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


def report(figures: dict[str, Any]) -> str:
    meta = figures["setup"]
    lines = [
        "Receipt signing, µs per receipt (one thread, this process; a new Receipt per call,",
        f"  signed to an element or to bytes; ~{meta['seconds']:g} s per figure; goal "
        f"<= {GOAL_MICROSECONDS:g} µs)",
        f"  Python {meta['python']}, {meta['platform']}",
        "",
        f"  {'algorithm':<14}{'signxml':>10}{'element':>10}{'bytes':>10}{'speed-up':>10}"
        f"{'bare sig':>10}{'1000 Ber.':>11}  verified (signxml / xmlsec1)",
    ]
    for algorithm, row in figures["algorithms"].items():
        before, element, now = row["signxml"], row["receipt_signer"], row["receipt_signer_bytes"]

        def checks(figure: dict[str, Any]) -> str:
            xmlsec = figure["verified_by_xmlsec1"]
            return (
                f"{'yes' if figure['verified_by_signxml'] else 'NO'}/"
                f"{'not installed' if xmlsec is None else 'yes' if xmlsec else 'NO'}"
            )

        lines.append(
            f"  {algorithm:<14}{before['microseconds_per_receipt']:>10.1f}"
            f"{element['microseconds_per_receipt']:>10.1f}"
            f"{now['microseconds_per_receipt']:>10.1f}{row['speed_up']:>9.1f}x"
            f"{row['bare_signature']['microseconds']:>10.1f}"
            f"{row['receipt_signer_1000_berichten']['microseconds_per_receipt']:>11.0f}"
            f"  before {checks(before)}, element {checks(element)}, bytes {checks(now)}"
        )
    lines += [
        "",
        "  'element': ReceiptSigner.sign, the signed receipt parsed into an element (what a",
        "  message signed again as a whole, WS-Security or ebMS, takes); 'bytes':",
        "  ReceiptSigner.signed_xml, the signed document as bytes (what the store keeps and a",
        "  plain WUS answer carries); 'speed-up': signxml / bytes;",
        "  'bare sig': the signature alone over 600 bytes (what SignedInfo's c14n is);",
        "  '1000 Ber.': signed_xml with a 1000-Bericht batch outcome (a ~90 KB receipt).",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
