"""The wiring: which descriptors serve which path, and the processes of `dk-adapter serve`.

It sits above every room. transport/ routes paths to endpoints without knowing their profile,
the profiles (soap/, ebms/) run descriptors without knowing their business, and the business
rooms (berichtenbox/, lopende_zaken/) declare descriptors without knowing their path. Here
they meet, each given only the part of the configuration it needs.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from datetime import timedelta

from adapter.berichtenbox import abonnementen
from adapter.berichtenbox import ebms_service as berichtenbox_ebms
from adapter.berichtenbox.berichtverwerk import BijlageLimits
from adapter.config import Config
from adapter.ebms.cpa import CpaStore
from adapter.ebms.endpoint import EbmsEndpoint, EbmsSettings
from adapter.ebms.service import EbmsService
from adapter.lopende_zaken import stuf as lopende_zaken_stuf
from adapter.lopende_zaken import wus as lopende_zaken
from adapter.receipts import ReceiptSigner
from adapter.soap.contract import PublishedContract
from adapter.soap.endpoint import WusEndpoint, WusSettings
from adapter.soap.schema import SchemaSet
from adapter.soap.wssecurity import SignerTrust, WssCredentials, WsSecurity
from adapter.soap.wus import WusService
from adapter.soap.xml import XmlLimits
from adapter.store.blobs import open_blob_store
from adapter.store.db import Database
from adapter.transport.app import Route, Router
from adapter.transport.server import run_server

EBMS_PATH = "/berichtenbox/ebms"


def wus_services(config: Config) -> tuple[WusService, ...]:
    return (
        abonnementen.service(
            abonnementen.AbonnementenSettings(config.organisations, config.limits.max_klanten)
        ),
        lopende_zaken.SERVICE,
        lopende_zaken_stuf.service(config.receipts.receiver_oin),
    )


def ebms_services(config: Config) -> tuple[EbmsService, ...]:
    limits = BijlageLimits(
        config.limits.personal_attachments_bytes, config.limits.general_attachments_bytes
    )
    return (
        berichtenbox_ebms.service(
            berichtenbox_ebms.BerichtVerwerkSettings(config.organisations, limits)
        ),
    )


def xml_limits(config: Config) -> XmlLimits:
    limits = config.limits
    return XmlLimits(
        max_attributes=limits.max_xml_attributes,
        max_depth=limits.max_xml_depth,
        max_elements=limits.max_xml_elements,
        max_text_length=limits.max_xml_text_length,
    )


def signer_trust(config: Config) -> SignerTrust:
    """What the signers of WS-Security and ebMS messages must chain to: the same trust
    anchors, intermediates and CRLs as TLS clients."""
    return SignerTrust(
        config.tls.trust_anchors,
        config.tls.intermediates,
        config.tls.crl,
        timedelta(seconds=config.limits.wss_clock_skew_seconds),
        timedelta(seconds=config.limits.wss_max_age_seconds),
    )


def ws_security(config: Config) -> WsSecurity:
    """Our WS-Security key (`[wss]`, by default the TLS pair) and the signers' trust."""
    wss = config.wss
    return WsSecurity(
        WssCredentials.from_files(
            wss.private_key if wss else config.tls.private_key,
            wss.certificate if wss else config.tls.certificate,
        ),
        signer_trust(config),
    )


class AdapterApp(Router):
    """The WSGI app of the mTLS port, with the database and signer it was built with."""

    def __init__(self, config: Config, database: Database, signer: ReceiptSigner) -> None:
        self.database, self.signer = database, signer
        limits = xml_limits(config)
        schemas = SchemaSet(config.base_dir / "xsd")
        security = ws_security(config)
        wus = WusSettings(
            config.organisations,
            config.receipts.receiver_oin,
            config.limits.max_request_bytes,
            limits,
            timedelta(hours=config.limits.replay_window_hours),
            security,
        )
        routes = {}
        for service in wus_services(config):
            contract = (
                PublishedContract(
                    config.base_dir / "wsdl" / service.wsdl,
                    config.base_dir / "xsd",
                    config.server.public_url + service.path,
                )
                if service.wsdl
                else None
            )
            routes[service.path] = Route(
                WusEndpoint(service, wus, database, signer, schemas),
                contract.answer if contract is not None else None,
                max_body_bytes=config.limits.max_request_bytes,
            )
        ebms = EbmsSettings(
            config.organisations,
            config.receipts.receiver_oin,
            config.limits.max_ebms_message_bytes,
            limits,
            # ebMS -s/-e sign and decrypt with the same key, and trust the same signers.
            security.credentials,
            security.trust,
        )
        routes[EBMS_PATH] = Route(
            EbmsEndpoint(
                ebms_services(config),
                ebms,
                database,
                signer,
                schemas,
                CpaStore.load(config.ebms.cpa_dir),
            ),
            max_body_bytes=config.limits.max_ebms_message_bytes,
        )
        super().__init__(routes)


def build_app(config: Config) -> AdapterApp:
    """The WSGI app with its own database engine and signer; called in each worker."""
    signer = ReceiptSigner.from_files(
        config.receipts.private_key,
        config.receipts.certificate,
        config.tls.intermediates,
        config.receipts.algorithm,
    )
    database = Database(config.database_url, open_blob_store(config.blobs))
    return AdapterApp(config, database, signer)


# Processes beside gunicorn, each started as `python -m MODULE CONFIG`: the scheduler (jobs
# and the admin listener) and the citizen listener (plain HTTP, its own gunicorn).
SIDE_PROCESSES = ("adapter.jobs.scheduler", "adapter.citizen.server")
_PR_SET_PDEATHSIG = 1  # prctl(2)


def _end_with_parent() -> None:
    """In a side process before it starts: SIGTERM when `serve` dies, even by SIGKILL.

    Otherwise a killed master leaves the scheduler delivering and the citizen listener holding
    its port, and the next `serve` cannot start. Linux only; elsewhere a no-op.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def serve(config: Config) -> None:
    """Migrate, then gunicorn for the mTLS port and beside it the scheduler and citizen pages."""
    database = Database(config.database_url)
    database.create_schema()
    # Workers build their own engines after the fork; none may inherit this one's connections.
    database.dispose()
    # Processes of their own (not multiprocessing: gunicorn's forked workers would inherit its
    # bookkeeping and try to join a process that is not their child when they exit).
    sides = [
        subprocess.Popen(
            [sys.executable, "-m", module, str(config.file)], preexec_fn=_end_with_parent
        )
        for module in SIDE_PROCESSES
    ]
    master = os.getpid()
    try:
        run_server(config, build_app)
    finally:
        # gunicorn workers are forked inside run() and leave through here as well.
        if os.getpid() == master:
            for side in sides:
                side.terminate()
            for side in sides:
                try:
                    side.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    side.kill()
