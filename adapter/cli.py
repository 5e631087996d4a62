"""`dk-adapter`: serve, check configuration, build the dev PKI, import accounts, verify receipts."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from lxml import etree
from requests import RequestException

from adapter.config import Config, ConfigError, check_files, load_config, load_organisations
from adapter.errors import SoapFault

DEFAULT_CONFIG = "conf/adapter.toml"
IMPORT_CHUNK = 1000


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    check_files(config)
    openssl_conf = config.tls.openssl_conf
    if openssl_conf is not None and os.environ.get("OPENSSL_CONF") != str(openssl_conf):
        # OpenSSL reads its configuration once, when the ssl module loads: start afresh with it.
        os.execve(  # noqa: S606 - re-executing ourselves with a fixed argv, no shell
            sys.executable,
            [sys.executable, "-m", "adapter.cli", *sys.argv[1:]],
            {**os.environ, "OPENSSL_CONF": str(openssl_conf)},
        )
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Before prometheus_client is imported anywhere: workers then share their samples.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="dk-adapter-metrics-")
    from adapter.logs import configure_logging
    from adapter.transport.server import serve

    configure_logging(config.logging)
    serve(config)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _config(args)
    check_files(config)
    print(f"{config.file}: OK")
    server = config.server
    print(f"  listens on {server.host}:{server.port}, public URL {server.public_url}")
    print(f"  database {config.database_url.split('://')[0]}")
    print(f"  {len(config.organisations.by_oin)} organisations from {config.organisations_file}")
    return 0


def cmd_pki_init(args: argparse.Namespace) -> int:
    from adapter.pki.devca import OrganisationSubject, init_dev_pki

    # Only the organisations file is needed: the PKI must be buildable before certs exist.
    config_file = Path(args.config).resolve()
    organisations_file = (
        Path(args.organisations)
        if args.organisations
        else config_file.parent / "organisations.toml"
    )
    organisations = load_organisations(organisations_file)
    directory = Path(args.dir)
    if args.if_missing and (directory / "root-ca.pem").exists():
        print(f"{directory}: development PKI already present")
        return 0
    files = init_dev_pki(
        directory,
        [OrganisationSubject(o.oin, o.name, o.kvk) for o in organisations.by_oin.values()],
        receipt_key=args.receipt_key,
        overwrite=args.force,
    )
    print(f"development PKI written to {directory} (trust anchor {files.root_ca})")
    for oin, client in files.clients.items():
        print(
            f"  {oin}: {client.certificate} (key {client.private_key.name}, {client.pkcs12.name})"
        )
    return 0


def cmd_accounts_import(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from adapter.store.accounts import read_accounts_csv, upsert_accounts
    from adapter.store.db import Database

    config = _config(args)
    path = Path(args.file)
    with path.open(encoding="utf-8", newline="") as handle:
        total = max(sum(1 for _ in handle) - 1, 0)
    database = Database(config.database_url)
    database.create_schema()
    count = 0
    # One transaction: a bad line anywhere leaves the stored accounts as they were.
    with database.transaction() as session, path.open(encoding="utf-8", newline="") as handle:
        chunk = []
        with tqdm(total=total, unit="line", disable=args.quiet, file=sys.stderr) as progress:
            for row in read_accounts_csv(handle, str(path)):
                chunk.append(row)
                if len(chunk) == IMPORT_CHUNK:
                    upsert_accounts(session, chunk)
                    progress.update(len(chunk))
                    count += len(chunk)
                    chunk = []
            if chunk:
                upsert_accounts(session, chunk)
                progress.update(len(chunk))
                count += len(chunk)
    database.dispose()
    print(f"{count} lines imported from {path}")
    return 0


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


def cmd_send(args: argparse.Namespace) -> int:
    from adapter.ebms.receiver import EbmsReceiver
    from adapter.ebms.sender import BerichtSpec, build_batch, deliver, wait_for_result
    from adapter.soap.client import MtlsClient

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
        receiver = None
        if args.receive_on:
            host, _, port = args.receive_on.rpartition(":")
            receiver = EbmsReceiver(host, int(port), client.certificate_file, client.key_file, root)
            receiver.__enter__()
        try:
            delivery = deliver(client, args.endpoint, args.to, args.cpa_id, payload, general)
            print(f"sent {delivery.message_id}, {delivery.size} bytes: HTTP {delivery.http_status}")
            ok = delivery.error is None and delivery.http_status == 200
            if delivery.error is not None:
                print(f"MessageError {delivery.error[0]}: {delivery.error[1]}")
            elif delivery.answer is not None:
                print("Acknowledgment received")
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
                response = etree.fromstring(result.payload() or b"<leeg/>")
                for counter in response.iterfind("BatchInformatie/*"):
                    print(f"  {counter.tag}: {counter.text}")
                ok = _print_receipt(result.envelope, root) and ok
            return 0 if ok else 1
        finally:
            if receiver is not None:
                receiver.__exit__(None, None, None)


def cmd_cpa_check(args: argparse.Namespace) -> int:
    from adapter.ebms.cpa import check_cpa, load_cpa

    failed = False
    for name in args.files:
        problems = check_cpa(Path(name))
        if problems:
            failed = True
            print(f"{name}: {len(problems)} problem(s)")
            for problem in problems:
                print(f"  {problem}")
            continue
        cpa = load_cpa(Path(name))
        print(f"{name}: OK, CPAId {cpa.cpa_id}, valid {cpa.start:%Y-%m-%d} to {cpa.end:%Y-%m-%d}")
        for party in cpa.parties:
            print(
                f"  {party.oin} ({party.role}) sends {', '.join(sorted(party.can_send)) or '-'}; "
                f"receives at {party.endpoint}, syncReplyMode {party.sync_reply_mode}, "
                f"{party.retries} retries every {party.retry_interval}, "
                f"kept {party.persist_duration}"
            )
    return 1 if failed else 0


def cmd_retention_run(args: argparse.Namespace) -> int:
    from datetime import date

    from adapter.jobs.retention import purge_expired_zaken
    from adapter.store.db import Database

    config = _config(args)
    database = Database(config.database_url)
    database.create_schema()
    removed = purge_expired_zaken(database, config.lopende_zaken.retention_days, date.today())
    database.dispose()
    print(f"{removed} closed zaken older than {config.lopende_zaken.retention_days} days removed")
    return 0


def cmd_verify_receipt(args: argparse.Namespace) -> int:
    from adapter.receipts import ReceiptInvalid, verify
    from adapter.soap.xml import parse_untrusted

    trusted = Path(args.trusted_pem) if args.trusted_pem else _config(args).tls.trust_anchors
    try:
        verified = verify(parse_untrusted(Path(args.file).read_bytes()), trusted)
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


def cmd_send_zaak(args: argparse.Namespace) -> int:
    from datetime import date, datetime

    from adapter.lopende_zaken.wus import NS, build_zaak_aanleveren, read_date, read_moment
    from adapter.lopende_zaken.zaken import StatusMelding, ZaakMelding
    from adapter.soap.client import MtlsClient

    status = None
    if args.status:
        moment = args.datum_status_gezet or datetime.now().replace(microsecond=0).isoformat()
        status = StatusMelding(
            args.status, read_moment(moment, "--datum-status-gezet"), args.status_code
        )
    melding = ZaakMelding(
        identificatie=args.identificatie,
        omschrijving=args.omschrijving,
        startdatum=read_date(args.startdatum, "--startdatum") if args.startdatum else date.today(),
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
        answer = client.call(args.endpoint, build_zaak_aanleveren(melding), f"{NS}/ZaakAanleveren")
    if answer.faultstring is not None:
        detail = answer.fault_detail
        message = detail.findtext("{*}Message") if detail is not None else None
        print(
            f"REFUSED (HTTP {answer.http_status}): {answer.faultstring}"
            + (f": {message}" if message else "")
        )
    else:
        result = (
            answer.payload.findtext(f"{{{NS}}}resultaat") if answer.payload is not None else None
        )
        print(f"ACCEPTED: zaak {melding.identificatie}: {result}")
    if answer.receipt is not None:
        receipt = answer.receipt.receipt
        print(f"receipt {receipt.receipt_id} verifies (signed by {answer.receipt.signer_subject})")
    else:
        print(f"receipt does NOT verify: {answer.receipt_problem}")
    return 0 if answer.faultstring is None and answer.receipt is not None else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dk-adapter", description=__doc__)
    parser.add_argument(
        "--config",
        default=os.environ.get("DK_ADAPTER_CONFIG", DEFAULT_CONFIG),
        help="adapter.toml (default: $DK_ADAPTER_CONFIG or conf/adapter.toml)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    commands.add_parser("serve", help="serve over mutual TLS").set_defaults(func=cmd_serve)
    commands.add_parser("check-config", help="validate the configuration").set_defaults(
        func=cmd_check_config
    )

    pki = commands.add_parser("pki", help="development PKI").add_subparsers(
        dest="pki", required=True
    )
    init = pki.add_parser("init", help="build a PKIoverheid-shaped test hierarchy")
    init.add_argument("--dir", default="certs")
    init.add_argument("--organisations", help="organisations.toml (default: next to --config)")
    init.add_argument("--receipt-key", choices=("ecdsa-p256", "rsa-3072"), default="ecdsa-p256")
    init.add_argument("--force", action="store_true", help="replace an existing hierarchy")
    init.add_argument("--if-missing", action="store_true", help="do nothing when one exists")
    init.set_defaults(func=cmd_pki_init)

    accounts = commands.add_parser("accounts", help="accounts and subscriptions")
    accounts_commands = accounts.add_subparsers(dest="accounts", required=True)
    load = accounts_commands.add_parser("import", help="load or update accounts from CSV")
    load.add_argument("file")
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    load.set_defaults(func=cmd_accounts_import)

    check = commands.add_parser("verify-receipt", help="verify a signed Afleverbevestiging")
    check.add_argument("file", help="a SOAP response or a stand-alone receipt")
    check.add_argument("--trusted-pem", help="root certificate (default: tls.trust_anchors)")
    check.add_argument("--show", action="store_true", help="print the verified receipt XML")
    check.set_defaults(func=cmd_verify_receipt)

    zaak = commands.add_parser(
        "send-zaak", help="push a test zaak status update to a Lopende Zaken endpoint over mTLS"
    )
    zaak.add_argument("--endpoint", default="https://127.0.0.1:8443/lopende-zaken")
    zaak.add_argument(
        "--cert", required=True, help="client certificate: PEM (with --key) or PKCS#12"
    )
    zaak.add_argument("--key", help="private key (PEM) of --cert")
    zaak.add_argument("--password", help="PKCS#12 password")
    zaak.add_argument(
        "--ca", default="certs/root-ca.pem", help="root that the server and receipt chain to"
    )
    zaak.add_argument("--identificatie", required=True)
    zaak.add_argument("--omschrijving", required=True)
    zaak.add_argument("--bsn", required=True, help="initiator BSN")
    zaak.add_argument("--startdatum", help="YYYY-MM-DD (default today)")
    zaak.add_argument("--status", help="status text to add")
    zaak.add_argument("--status-code")
    zaak.add_argument(
        "--datum-status-gezet", help="ISO date-time; without offset Dutch time (default now)"
    )
    zaak.add_argument("--toelichting")
    zaak.add_argument("--zaaktype-code")
    zaak.add_argument("--zaaktype-omschrijving")
    zaak.add_argument("--verwijzing", help="https URL of the dossier at the organisation")
    zaak.add_argument("--einddatum", help="YYYY-MM-DD: closes the zaak")
    zaak.add_argument("--resultaat")
    zaak.set_defaults(func=cmd_send_zaak)

    send = commands.add_parser("send", help="deliver a BerichtVerwerk batch over ebMS 2.0 and mTLS")
    send.add_argument("--endpoint", default="https://127.0.0.1:8443/berichtenbox/ebms")
    send.add_argument(
        "--cert", required=True, help="client certificate: PKCS#12, or PEM with --key"
    )
    send.add_argument("--key", help="private key (PEM) of --cert")
    send.add_argument("--password", help="PKCS#12 password")
    send.add_argument(
        "--ca", default="certs/root-ca.pem", help="root the server and receipts chain to"
    )
    send.add_argument("--to", default="00000004003214345001", help="MijnOverheid's OIN")
    send.add_argument("--cpa-id", help="CPAId (default: the development naming for both OINs)")
    send.add_argument("--bsn", help="recipient BSN")
    send.add_argument("--type", help="BerichtType")
    send.add_argument("--subject", help="Onderwerp (1-50 characters)")
    send.add_argument("--text", help="BerichtTekst")
    send.add_argument(
        "--attach", action="append", default=[], help="personal PDF attachment (max 2)"
    )
    send.add_argument(
        "--general", action="append", default=[], help="general PDF attachment (max 3)"
    )
    send.add_argument("--batch", help="send this Berichten XML file instead of building one")
    send.add_argument("--receive-on", help="HOST:PORT: wait there for the BerichtVerwerkResponse")
    send.add_argument("--timeout", type=float, default=120)
    send.set_defaults(func=cmd_send)

    cpa = commands.add_parser("cpa", help="collaboration protocol agreements (ebMS)")
    cpa_check = cpa.add_subparsers(dest="cpa", required=True).add_parser(
        "check", help="validate CPA files and say what is wrong"
    )
    cpa_check.add_argument("files", nargs="+")
    cpa_check.set_defaults(func=cmd_cpa_check)

    # Operations commands live next to what they operate on.
    from adapter import audit_commands, usage
    from adapter.store import migrate

    migrate.add_commands(commands, _config)
    audit_commands.add_commands(commands, _config)
    usage.add_commands(commands, _config)

    retention = commands.add_parser("retention", help="delete what has outlived its retention")
    retention.add_subparsers(dest="retention", required=True).add_parser(
        "run", help="delete closed zaken older than lopende_zaken.retention_days"
    ).set_defaults(func=cmd_retention_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # `db upgrade` reports what it did
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except SoapFault as exc:  # a value the command checks as the server would
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RequestException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
