"""`dk-adapter conformance run` (server mode) and `dk-adapter conformance listen` (client mode).

The kit itself is in adapter.kit.conformance; this module reads the options, shows progress
and results with rich, and writes the JUnit and HTML reports. Exit status: 0 only when every
case that ran passed and no required case was left unrun; 1 otherwise; 2 for a usage error.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from adapter.cli.base import Commands, ConfigLoader
from adapter.config import RECEIPT_PLACEMENTS
from adapter.kit.conformance.model import WUS_PROFILES

if TYPE_CHECKING:
    from adapter.kit.client import MtlsClient
    from adapter.kit.conformance.probe import WssSide
    from adapter.kit.sender import SignedChannel


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

    from adapter.kit.client import MtlsClient
    from adapter.kit.conformance.model import CaseResult, Status
    from adapter.kit.conformance.probe import Inbox, Target, TestData
    from adapter.kit.conformance.reports import print_table, write_reports
    from adapter.kit.conformance.server_mode import Case, run_matrix, select
    from adapter.kit.receiver import EbmsReceiver

    console = Console()
    cases = select(args.profile, args.case)
    key = Path(args.key) if args.key else None
    root = Path(args.ca)
    if args.wus_profile == "2W-be-SE" and not args.wss_certificate:
        console.print(
            "[red]--wus-profile 2W-be-SE needs --wss-certificate: requests are "
            "encrypted for the target's WS-Security certificate[/]"
        )
        return 2
    with MtlsClient(Path(args.p12), key, root, args.password) as client:
        signed = _signed_channel(args, client)
        receiver = None
        if args.profile != "wus":
            host, _, port = args.receive_on.rpartition(":")
            receiver = EbmsReceiver(
                host,
                int(port),
                client.certificate_file,
                client.key_file,
                root,
                **(signed.receiver_options() if signed else {}),  # type: ignore[arg-type]
            ).__enter__()
        try:
            target = Target(
                args.target,
                client,
                root,
                Inbox(receiver) if receiver is not None else None,
                receiver_oin=args.receiver_oin,
                cpa_id=args.cpa_id,
                data=TestData(args.bsn_subscribed, args.bsn_not_subscribed, args.bericht_type),
                result_timeout=args.result_timeout,
                wss=_wss_side(args, client.certificate_file, client.key_file, root),
                signed_ebms=signed,
            )
            with Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[tally]}"),
                console=console,
                transient=False,
            ) as progress:
                task = progress.add_task("starting", total=len(cases), tally="")
                tally = {s: 0 for s in Status}

                def show(case: Case, result: CaseResult | None) -> None:
                    if result is None:
                        progress.update(task, description=case.case_id)
                        return
                    tally[result.status] += 1
                    progress.update(
                        task,
                        advance=1,
                        tally=f"[green]{tally[Status.PASSED]} passed[/] "
                        f"[red]{tally[Status.FAILED]} failed[/] "
                        f"[yellow]{tally[Status.NOT_RUN]} not run[/]",
                    )

                report = run_matrix(cases, target, show)
                progress.update(task, description="done")
        finally:
            if receiver is not None:
                receiver.__exit__(None, None, None)
    print_table(report, console)
    write_reports(report, Path(args.junit) if args.junit else None, _path(args.html))
    return report.exit_status()


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def _signed_channel(args: argparse.Namespace, client: MtlsClient) -> SignedChannel | None:
    """`--cpa FILE`: the organisation's osb-rm-s CPA, for the signed ebMS case."""
    from adapter.kit.sender import SignedChannel

    if not args.cpa:
        return None
    try:
        return SignedChannel.of_client(Path(args.cpa), args.receiver_oin, client)
    except ValueError as exc:
        raise SystemExit(f"error: --cpa: {exc}") from None


def _wss_side(args: argparse.Namespace, certificate: Path, key: Path, root: Path) -> WssSide | None:
    from adapter.kit.conformance.probe import WssSide

    if args.wus_profile == "2W-be":
        return None
    return WssSide.of_client(
        args.wus_profile, certificate, key, root, _path(args.wss_certificate), args.receipt
    )


def cmd_listen(args: argparse.Namespace, config_loader: ConfigLoader) -> int:
    from rich.console import Console

    from adapter.kit.conformance.client_mode import Listener
    from adapter.kit.conformance.model import CaseResult, Status
    from adapter.kit.conformance.reports import print_table, write_reports

    console = Console()
    config = config_loader(args)
    junit, html = _path(args.junit), _path(args.html)

    def show(result: CaseResult) -> None:
        style = "green" if result.status is Status.PASSED else "bold red"
        console.print(f"[{style}]{result.status.value.upper():7}[/] {result.title}")
        for finding in result.findings:
            mark = "!" if finding.severity == "error" else "~"
            console.print(f"    {mark} {finding.message}\n      rule: {finding.rule}")
        write_reports(listener.report, junit, html)  # always current, also if killed

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    listener = Listener(config, args.host, args.port, show)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with listener:
        console.print(
            f"grading requests on {listener.report.target} (WSDLs at /abonnementen?wsdl and "
            f"/lopende-zaken?wsdl, ebMS at /berichtenbox/ebms); Ctrl-C ends and reports"
        )
        while not stop.wait(0.5):
            pass
    print_table(listener.report, console)
    write_reports(listener.report, junit, html)
    return listener.report.exit_status()


def register(commands: Commands, config_loader: ConfigLoader) -> None:
    """`conformance run` reads no configuration; `conformance listen` serves the adapter's."""
    group = commands.add_parser(
        "conformance", help="the conformance kit: test a server (run) or grade a client (listen)"
    )
    sub = group.add_subparsers(dest="conformance_command", required=True)
    run = sub.add_parser(
        "run",
        help="server mode: run the matrix of cases against an endpoint offering our services",
        description="Exit status 0 only when every case that ran passed and no required case "
        "was left unrun. Cases the kit cannot run (encrypted ebMS; osb-rm-s without --cpa) "
        "or that are for another WUS profile than --wus-profile are listed as 'not run': "
        "they are not passed and prove nothing.",
    )
    run.add_argument("--target", required=True, help="base URL, e.g. https://127.0.0.1:8443")
    run.add_argument("--p12", required=True, help="client certificate: PKCS#12 (or PEM with --key)")
    run.add_argument("--password", help="PKCS#12 password")
    run.add_argument("--key", help="private key (PEM) when --p12 is a PEM certificate")
    run.add_argument(
        "--ca", default="certs/root-ca.pem", help="root the server and receipts chain to"
    )
    run.add_argument(
        "--profile",
        choices=("wus", "ebms", "all"),
        default="all",
        help="which cases to run: the WUS services, the ebMS ones, or all (default)",
    )
    run.add_argument(
        "--case", action="append", default=[], help="run only this case id (repeatable)"
    )
    run.add_argument("--junit", help="write a JUnit XML report to this file")
    run.add_argument("--html", help="write a self-contained HTML report to this file")
    run.add_argument(
        "--receive-on",
        default="127.0.0.1:8444",
        help="HOST:PORT of the kit's mTLS ebMS receiver: the endpoint in your CPA (default the "
        "development CPAs' 127.0.0.1:8444)",
    )
    run.add_argument(
        "--result-timeout",
        type=float,
        default=60,
        help="seconds to wait for an asynchronous answer (Acknowledgment, result)",
    )
    run.add_argument("--receiver-oin", default="00000004003214345001", help="MijnOverheid's OIN")
    run.add_argument("--cpa-id", help="CPAId (default: the development naming for both OINs)")
    run.add_argument(
        "--cpa",
        metavar="FILE",
        help="your organisation's osb-rm-s CPA with the target: runs the signed BerichtVerwerk "
        "case, signed with the --p12 key (without it that case is not run)",
    )
    run.add_argument("--bsn-subscribed", default="999993653", help="an active, subscribed BSN")
    run.add_argument(
        "--bsn-not-subscribed", default="999990019", help="an active BSN not subscribed"
    )
    run.add_argument("--bericht-type", default="BESLUIT", help="a BerichtType granted to you")
    run.add_argument(
        "--wus-profile",
        choices=WUS_PROFILES,
        default="2W-be",
        help="the WUS profile the target has for your organisation: 2W-be (default; also no "
        "profile) runs the unsigned WUS cases, 2W-be-S and 2W-be-SE the WS-Security ones, "
        "signed with the client certificate's key",
    )
    run.add_argument(
        "--wss-certificate",
        help="the target's WS-Security certificate (PEM, with its chain): 2W-be-SE requests are "
        "encrypted for it, and answers must be signed with it",
    )
    run.add_argument(
        "--receipt",
        choices=sorted(RECEIPT_PLACEMENTS),
        default="header",
        help="where the target puts your Afleverbevestiging: in the SOAP header (default), or "
        'nowhere with receipt = "wsse" (2W-be-S/SE: the signed answer is the proof)',
    )
    run.set_defaults(func=cmd_run)

    listen = sub.add_parser(
        "listen",
        help="client mode: serve our WSDLs and ebMS endpoint over mTLS and grade every request",
        description="Serves the adapter of --config (its database, PKI and CPAs) and grades "
        "each request a client sends; answers as the real service does. Ctrl-C ends, prints "
        "the table and writes the reports (which are also rewritten after every request).",
    )
    listen.add_argument("--host", default="127.0.0.1", help="address to listen on")
    listen.add_argument("--port", type=int, default=8443, help="port (0: any free port)")
    listen.add_argument("--junit", help="write a JUnit XML report to this file")
    listen.add_argument("--html", help="write a self-contained HTML report to this file")
    listen.set_defaults(func=lambda args: cmd_listen(args, config_loader))
