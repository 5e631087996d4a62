"""CRL refresh: the scheduler keeps `tls.crl` current without a restart.

Every `tls.crl_refresh_hours` (and once at start) the job reads the configured CRL file,
downloads the CRLs of the CAs' distribution points (those named in the configured
certificates, plus `tls.crl_urls`) and accepts a downloaded CRL only when a configured CA
signed it and it is newer than the one held for that CA: a bad, foreign or older CRL never
replaces a good one. When anything changed the combined PEM is written atomically over
`tls.crl`; each worker notices the new file and builds a new TLS context for new connections
(adapter.transport.worker). A CRL past its nextUpdate, or a refresh that failed, is logged
at ERROR and reported by /ready (adapter.admin.CrlStatus).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests
from apscheduler.schedulers.base import BaseScheduler
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from adapter.admin import CrlStatus
from adapter.config import TlsConfig

log = logging.getLogger("adapter.jobs.crl")

JOB_ID = "crl-refresh"
RETRY_SECONDS = 300.0
_PEM_BEGIN = b"-----BEGIN X509 CRL-----"


class CrlRejected(ValueError):
    """A downloaded CRL that is not taken: unreadable, too large, or not signed by a CA."""


def parse_crls(data: bytes) -> list[x509.CertificateRevocationList]:
    """The CRLs in `data`: PEM blocks (one or more), else one DER CRL as CDPs serve them."""
    if _PEM_BEGIN in data:
        blocks = [_PEM_BEGIN + part for part in data.split(_PEM_BEGIN)[1:]]
        return [x509.load_pem_x509_crl(block) for block in blocks]
    return [x509.load_der_x509_crl(data)]


def _certificates(files: Iterable[Path]) -> Iterator[x509.Certificate]:
    for file in files:
        yield from x509.load_pem_x509_certificates(file.read_bytes())


def issuing_cas(tls: TlsConfig) -> list[x509.Certificate]:
    """The CA certificates whose CRLs may be accepted: the trust anchors and intermediates."""
    return [cert for cert in _certificates((tls.trust_anchors, tls.intermediates)) if _is_ca(cert)]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def distribution_points(tls: TlsConfig) -> list[str]:
    """HTTP(S) CRL URLs: `tls.crl_urls`, then the distribution points named in the server
    certificate's chain, the trust anchors and the intermediates (LDAP ones are skipped)."""
    urls = list(tls.crl_urls)
    for cert in _certificates((tls.certificate, tls.trust_anchors, tls.intermediates)):
        try:
            points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        except x509.ExtensionNotFound:
            continue
        for point in points:
            for name in point.full_name or ():
                if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith(
                    ("http://", "https://")
                ):
                    urls.append(name.value)
    return list(dict.fromkeys(urls))  # once each, in order


def signing_ca(
    crl: x509.CertificateRevocationList, cas: Iterable[x509.Certificate]
) -> x509.Certificate | None:
    """The configured CA that issued and signed `crl`, if any."""
    for ca in cas:
        if ca.subject != crl.issuer:
            continue
        try:
            usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
            if not usage.crl_sign:
                continue
        except x509.ExtensionNotFound:
            pass
        try:
            valid = crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
        except (TypeError, ValueError, UnsupportedAlgorithm):  # a key or algorithm we cannot use
            valid = False
        if valid:
            return ca
    return None


def _crl_number(crl: x509.CertificateRevocationList) -> int | None:
    try:
        return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        return None


def is_newer(
    candidate: x509.CertificateRevocationList, held: x509.CertificateRevocationList
) -> bool:
    """Whether `candidate` supersedes `held` (same issuer): a higher CRL number, or, when
    either has none, a later thisUpdate. The same CRL again is not newer."""
    new, old = _crl_number(candidate), _crl_number(held)
    if new is not None and old is not None:
        return new > old
    return candidate.last_update_utc > held.last_update_utc


@dataclass
class Fetched:
    url: str
    crls: list[x509.CertificateRevocationList]


def fetch(session: requests.Session, url: str, timeout: float, max_bytes: int) -> Fetched:
    """Download one CRL URL within `timeout` (connect and each read) and `max_bytes`."""
    with session.get(url, timeout=timeout, stream=True) as response:
        response.raise_for_status()
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise CrlRejected(f"{declared} bytes, more than crl_max_bytes ({max_bytes})")
        data = bytearray()
        for chunk in response.iter_content(65536):
            data += chunk
            if len(data) > max_bytes:
                raise CrlRejected(f"more than crl_max_bytes ({max_bytes})")
    try:
        return Fetched(url, parse_crls(bytes(data)))
    except ValueError as exc:
        raise CrlRejected(f"not a CRL: {exc}") from exc


def write_crls(path: Path, crls: Iterable[x509.CertificateRevocationList]) -> None:
    """Replace `path` by the CRLs as PEM: written beside it and renamed, so a worker that
    reloads it never reads half a file."""
    pem = b"".join(crl.public_bytes(serialization.Encoding.PEM) for crl in crls)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o644)
            handle.write(pem)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class CrlRefresh:
    """The job: merge the configured file with what the distribution points serve."""

    def __init__(
        self, tls: TlsConfig, status: CrlStatus, session: requests.Session | None = None
    ) -> None:
        self.tls, self.status = tls, status
        self.session = session or requests.Session()

    def run(self) -> list[str]:
        """One round, its problems logged at ERROR and handed to /ready; returns them."""
        problems = self.refresh(datetime.now(UTC))
        for problem in problems:
            log.error("CRL: %s", problem)
        self.status.report(problems)
        return problems

    def refresh(self, now: datetime) -> list[str]:
        """One round; returns what is wrong (empty when every CRL is current)."""
        path = self.tls.crl
        if path is None:  # CRL checking is off: nothing to keep current
            return []
        problems: list[str] = []
        try:
            held = parse_crls(path.read_bytes()) if path.exists() else []
            cas = issuing_cas(self.tls)
            urls = distribution_points(self.tls)
        except (OSError, ValueError) as exc:
            return [f"cannot read {path.name} or the CA certificates: {exc}"]
        changed = False
        for url in urls:
            try:
                fetched = fetch(
                    self.session, url, self.tls.crl_fetch_timeout_seconds, self.tls.crl_max_bytes
                )
            except (requests.RequestException, CrlRejected) as exc:
                problems.append(f"refresh from {url} failed: {exc}")
                continue
            for crl in fetched.crls:
                taken, refusal = _merge(held, crl, cas)
                if refusal is not None:
                    problems.append(f"refresh from {url} refused: {refusal}")
                elif taken:
                    changed = True
                    log.info(
                        "CRL of %s from %s taken (number %s)",
                        crl.issuer.rfc4514_string(),
                        url,
                        _crl_number(crl),
                    )
        if changed:
            try:
                write_crls(path, held)
            except OSError as exc:
                problems.append(f"cannot write {path.name}: {exc}")
        for crl in held:
            next_update = crl.next_update_utc
            if next_update is not None and next_update <= now:
                problems.append(
                    f"CRL of {crl.issuer.rfc4514_string()} is stale: nextUpdate "
                    f"{next_update:%Y-%m-%d %H:%M} UTC has passed"
                )
        return problems


def _merge(
    held: list[x509.CertificateRevocationList],
    crl: x509.CertificateRevocationList,
    cas: list[x509.Certificate],
) -> tuple[bool, str | None]:
    """Put `crl` in `held` in place of its issuer's older one: whether it was taken, and
    the reason when it is refused. One that is not newer than the one held is left out
    without a reason: a CDP may serve the same CRL until its CA issues the next one."""
    if signing_ca(crl, cas) is None:
        return False, f"CRL of {crl.issuer.rfc4514_string()} is not signed by a configured CA"
    for index, current in enumerate(held):
        if current.issuer == crl.issuer:
            if not is_newer(crl, current):
                return False, None
            held[index] = crl
            return True, None
    held.append(crl)
    return True, None


def schedule_crl_refresh(scheduler: BaseScheduler, tls: TlsConfig, status: CrlStatus) -> None:
    """Register the job: at once, then every `tls.crl_refresh_hours`; after a round that found
    something wrong, again within `RETRY_SECONDS`, so a distribution point that was down for a
    moment does not keep /ready failing for hours. Every node runs it (no job lock): each keeps
    its own CRL file."""
    job = CrlRefresh(tls, status)
    interval = tls.crl_refresh_hours * 3600

    def run() -> None:
        if job.run():
            retry_at = datetime.now(UTC) + timedelta(seconds=min(interval, RETRY_SECONDS))
            scheduler.modify_job(JOB_ID, next_run_time=retry_at)

    scheduler.add_job(
        run,
        "interval",
        seconds=interval,
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
    )
