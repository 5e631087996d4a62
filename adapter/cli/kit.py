"""`dk-adapter send` and `dk-adapter send-zaak`: the other party's side, from adapter.kit.

These commands play the organisation: they deliver a BerichtVerwerk batch over ebMS, or a
Lopende Zaken update over WUS, with the organisation's own certificate, and print what came
back and whether its receipt verifies. What they send is built in `adapter.kit`; this module
reads the options and prints.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lxml import etree

from adapter.cli.base import Commands, ConfigLoader
from adapter.kit.wire import WireMessage

if TYPE_CHECKING:
    from adapter.kit.client import MtlsClient
    from adapter.kit.sender import SignedChannel


def _print_receipt(document: etree._Element, root: Path) -> bool:
    from adapter.receipts import ReceiptInvalid, verify

    try:
        verified = verify(document, root)
    except ReceiptInvalid as exc:
        print(f"  receipt does NOT verify: {exc}")
        return False
    receipt = verified.receipt
    print(f"  receipt {receipt.receipt_id} verifies (signed by {verified.signer_subject})")
    for bericht in receipt.outcome.berichten:
        print(
            f"    {bericht.bericht_id}  {bericht.verwerkingscode}"
            + (f"  ({bericht.reden})" if bericht.reden else "")
        )
    if not receipt.outcome.accepted:
        print(f"    Geweigerd {receipt.outcome.code}: {receipt.outcome.reason}")
    return True


def _save(directory: str | None, stem: str, message: WireMessage | None) -> None:
    """`--save DIR`: keep one wire message and say where it went."""
    from adapter.kit.wire import save

    if directory is None or message is None:
        return
    files = save(Path(directory), stem, message)
    if files:
        print(f"  saved {', '.join(str(f) for f in files)}")


def cmd_send(args: argparse.Namespace) -> int:
    from adapter.kit.client import MtlsClient
    from adapter.kit.receiver import EbmsReceiver
    from adapter.kit.sender import (
        BerichtSpec,
        build_batch,
        deliver,
        refresh_batch,
        wait_for_result,
    )

    root = Path(args.ca)
    key = Path(args.key) if args.key else None
    with MtlsClient(Path(args.cert), key, root, args.password) as client:
        from_oin = client.oin()
        general = [
            (f"algemeen-{n}@{from_oin}", Path(f).read_bytes())
            for n, f in enumerate(args.general, 1)
        ]
        if args.batch:
            payload = Path(args.batch).read_bytes()
            if args.fresh:
                payload = refresh_batch(payload)
        elif args.bsn and args.type and args.subject:
            spec = BerichtSpec(
                bsn=args.bsn,
                bericht_type=args.type,
                onderwerp=args.subject,
                tekst=args.text,
                bijlagen=[(Path(f).name[:128], Path(f).read_bytes()) for f in args.attach],
                algemene=[
                    (Path(f).name[:128], cid)
                    for f, (cid, _) in zip(args.general, general, strict=True)
                ],
            )
            payload = build_batch(from_oin, [spec])
        else:
            print("error: give --batch FILE, or --bsn, --type and --subject", file=sys.stderr)
            return 2
        secured = _secured_by(args.cpa, args.to, client) if args.cpa else None
        receiver = None
        if args.receive_on:
            host, _, port = args.receive_on.rpartition(":")
            receiver = EbmsReceiver(
                host,
                int(port),
                client.certificate_file,
                client.key_file,
                root,
                **(secured.receiver_options() if secured else {}),  # type: ignore[arg-type]
            )
            receiver.__enter__()
        try:
            delivery = deliver(
                client,
                args.endpoint,
                args.to,
                secured.cpa.cpa_id if secured else args.cpa_id,
                payload,
                general,
                *((secured.party.security, secured.key) if secured else ()),
                reliable=secured.party.acknowledges() if secured else True,
            )
            print(f"sent {delivery.message_id}, {delivery.size} bytes: HTTP {delivery.http_status}")
            _save(args.save, "request", delivery.request)
            _save(args.save, "response", delivery.response)
            ok = delivery.error is None and delivery.http_status == 200
            if delivery.error is not None:
                print(f"MessageError {delivery.error[0]}: {delivery.error[1]}")
            elif delivery.answer is not None:
                print("Acknowledgment received")
            elif secured is not None and not secured.party.acknowledges():
                print("taken (best effort: no Acknowledgment)")
            else:
                print("no synchronous answer (syncReplyMode none): the Acknowledgment follows")
            if delivery.answer is not None:
                ok = _print_receipt(delivery.answer, root) and ok
            if receiver is not None and ok:
                print(f"waiting up to {args.timeout:g}s for the result on {args.receive_on} ...")
                result = wait_for_result(receiver, delivery.message_id, args.timeout)
                if result is None:
                    print("no BerichtVerwerkResponse arrived in time")
                    return 1
                print("BerichtVerwerkResponse received and acknowledged")
                _save(args.save, "result", result.wire)
                response = etree.fromstring(result.payload() or b"<leeg/>")
                for counter in response.iterfind("BatchInformatie/*"):
                    print(f"  {counter.tag}: {counter.text}")
                ok = _print_receipt(result.envelope, root) and ok
            return 0 if ok else 1
        finally:
            if receiver is not None:
                receiver.__exit__(None, None, None)


def _secured_by(path: str, to_oin: str, client: MtlsClient) -> SignedChannel:
    from adapter.kit.sender import SignedChannel

    try:
        return SignedChannel.of_client(Path(path), to_oin, client)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def cmd_send_zaak(args: argparse.Namespace) -> int:
    from adapter.kit.client import MtlsClient
    from adapter.kit.zaak import send_zaak, verwerkingsresultaat

    # The server's own readers: a value the server would refuse is refused here first.
    from adapter.lopende_zaken.wus import AMSTERDAM, read_date, read_moment
    from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding

    status = None
    if args.status:
        # "Now" with its offset: a bare local time would be read as Dutch time, an hour or
        # two early on a host that runs in UTC, and could lose to an earlier status.
        moment = args.datum_status_gezet or datetime.now(UTC).isoformat(timespec="seconds")
        status = StatusMelding(
            args.status, read_moment(moment, "--datum-status-gezet"), args.status_code
        )
    today = datetime.now(AMSTERDAM).date()  # the Dutch calendar day, whatever the host's zone
    melding = ZaakMelding(
        identificatie=args.identificatie,
        omschrijving=args.omschrijving,
        startdatum=read_date(args.startdatum, "--startdatum") if args.startdatum else today,
        initiator_bsn=args.bsn,
        toelichting=args.toelichting,
        zaaktype_code=args.zaaktype_code,
        zaaktype_omschrijving=args.zaaktype_omschrijving,
        einddatum=read_date(args.einddatum, "--einddatum") if args.einddatum else None,
        resultaat=args.resultaat,
        verwijzing=args.verwijzing,
        status=status,
    )
    key = Path(args.key) if args.key else None
    with MtlsClient(Path(args.cert), key, Path(args.ca), args.password) as client:
        answer = send_zaak(client, args.endpoint, melding)
    if answer.faultstring is not None:
        detail = answer.fault_detail
        message = detail.findtext("{*}Message") if detail is not None else None
        print(
            f"REFUSED (HTTP {answer.http_status}): {answer.faultstring}"
            + (f": {message}" if message else "")
        )
    else:
        print(f"ACCEPTED: zaak {melding.identificatie}: {verwerkingsresultaat(answer)}")
    if answer.receipt is not None:
        receipt = answer.receipt.receipt
        print(f"receipt {receipt.receipt_id} verifies (signed by {answer.receipt.signer_subject})")
    else:
        print(f"receipt does NOT verify: {answer.receipt_problem}")
    _save(args.save, "request", answer.request)
    _save(args.save, "response", answer.response)
    return 0 if answer.faultstring is None and answer.receipt is not None else 1


def _client_options(command: argparse.ArgumentParser, endpoint: str) -> None:
    """The options `send` and `send-zaak` share: where to, and as whom."""
    command.add_argument(
        "--endpoint", default=endpoint, help=f"URL to post to (default {endpoint})"
    )
    command.add_argument(
        "--cert", required=True, help="client certificate: PKCS#12 (.p12, .pfx) or PEM with --key"
    )
    command.add_argument("--key", help="private key (PEM) of a PEM --cert")
    command.add_argument("--password", help="password of a PKCS#12 --cert (dev PKI: changeit)")
    command.add_argument(
        "--ca",
        default="certs/root-ca.pem",
        help="root the server's certificate and the receipts chain to (default certs/root-ca.pem)",
    )
    command.add_argument(
        "--save",
        metavar="DIR",
        help="keep the wire messages (request, response) in DIR, e.g. to check their "
        "receipts with xmlsec1",
    )


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`send-zaak` and `send`; they read no configuration, only the options they are given."""
    zaak = commands.add_parser(
        "send-zaak",
        help="push a test zaak (and status) to a Lopende Zaken endpoint over mTLS",
        description="Send one ZaakAanleveren as the organisation of --cert, print the answer "
        "and whether its receipt verifies.",
    )
    _client_options(zaak, "https://127.0.0.1:8443/lopende-zaken")
    zaak.add_argument("--identificatie", required=True, help="the zaak's identificatie")
    zaak.add_argument("--omschrijving", required=True, help="what the zaak is about")
    zaak.add_argument("--bsn", required=True, help="initiator BSN")
    zaak.add_argument("--startdatum", help="YYYY-MM-DD (default: today in the Netherlands)")
    zaak.add_argument("--status", help="status text to add")
    zaak.add_argument("--status-code", help="the status's code in the zaaksysteem")
    zaak.add_argument(
        "--datum-status-gezet",
        help="ISO date-time of the status; without an offset Dutch time (default: now)",
    )
    zaak.add_argument("--toelichting", help="explanation shown with the zaak")
    zaak.add_argument("--zaaktype-code", help="code of the zaaktype")
    zaak.add_argument("--zaaktype-omschrijving", help="name of the zaaktype")
    zaak.add_argument("--verwijzing", help="https URL of the dossier at the organisation")
    zaak.add_argument("--einddatum", help="YYYY-MM-DD: closes the zaak")
    zaak.add_argument("--resultaat", help="the outcome of a closed zaak")
    zaak.set_defaults(func=cmd_send_zaak)

    send = commands.add_parser(
        "send",
        help="deliver a BerichtVerwerk batch over ebMS 2.0 and mTLS",
        description="Send one letter (--bsn, --type, --subject) or a Berichten file (--batch) "
        "as the organisation of --cert, print the Acknowledgment's receipt and, with "
        "--receive-on, wait for the BerichtVerwerkResponse.",
    )
    _client_options(send, "https://127.0.0.1:8443/berichtenbox/ebms")
    send.add_argument(
        "--to", default="00000004003214345001", help="MijnOverheid's OIN (default the dev one)"
    )
    send.add_argument("--cpa-id", help="CPAId (default: the development naming for both OINs)")
    send.add_argument(
        "--cpa",
        help="CPA file: its CPAId; for -s/-e profiles sign (and encrypt) with the --cert key "
        "and verify (and decrypt) the result; for osb-be* ask no Acknowledgment",
    )
    send.add_argument("--bsn", help="recipient BSN")
    send.add_argument("--type", help="BerichtType, one of the organisation's bericht_types")
    send.add_argument("--subject", help="Onderwerp (1-50 characters)")
    send.add_argument("--text", help="BerichtTekst")
    send.add_argument(
        "--attach", action="append", default=[], help="personal PDF attachment (max 2)"
    )
    send.add_argument(
        "--general", action="append", default=[], help="general PDF attachment (max 3)"
    )
    send.add_argument("--batch", help="send this Berichten XML file instead of building one")
    send.add_argument(
        "--fresh",
        action="store_true",
        help="with --batch: new BatchID and BerichtIDs and AanmaakDatum now, so a sample "
        "file can be sent again",
    )
    send.add_argument("--receive-on", help="HOST:PORT: wait there for the BerichtVerwerkResponse")
    send.add_argument(
        "--timeout",
        type=float,
        default=120,
        help="seconds to wait for the result with --receive-on (default 120)",
    )
    send.set_defaults(func=cmd_send)
