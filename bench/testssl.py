"""Debian's testssl.sh against a running adapter's mutual-TLS port, and a verdict on it.

Run: `.venv/bin/python bench/testssl.py [--json FILE] [--log FILE]`; exits 1 on a weak
protocol, a weak cipher, no forward secrecy, a vulnerability or a missing or untrusted chain.

1. Starts the adapter as `make run` does (`python -m adapter.cli serve`, which loads
   conf/openssl-tls.cnf through OPENSSL_CONF), but in a temporary directory with free ports:
   a dev PKI (`init_dev_pki`, what `dk-adapter pki init` runs), SQLite, the example accounts
   (bench/_setup.py, the configuration of the end-to-end tests).
2. Runs testssl.sh (`apt-get install testssl.sh` when it is missing) with the client
   certificate of 00000099000000002000: protocols (-p), cipher categories (-s), forward
   secrecy (-f), the server's picks (-P), its certificate and chain (-S, the dev root added
   as a trust anchor with --add-ca) and the vulnerabilities (-U). Debian ships testssl.sh
   3.0, which lacks `--mtls` (3.2 has it): its openssl calls go through a wrapper that adds
   the client certificate to every `s_client`, which is what `--mtls` does; its own socket
   checks read only the ServerHello, which comes before the server asks for a certificate.
3. Prints a summary per section from testssl's JSON findings and the verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._setup import GEMEENTE, build_pki, database, running_server  # noqa: E402

CHECKS = ("-p", "-s", "-f", "-P", "-S", "-U")
PROTOCOLS_ALLOWED = {"TLS1_2", "TLS1_3"}
PROTOCOLS_REFUSED = {"SSLv2", "SSLv3", "TLS1", "TLS1_1"}
# testssl's cipher categories (-s); only the strong one may be offered.
WEAK_CIPHER_LISTS = {
    "cipherlist_NULL",
    "cipherlist_aNULL",
    "cipherlist_EXPORT",
    "cipherlist_LOW",
    "cipherlist_3DES_IDEA",
    "cipherlist_AVERAGE",
    "cipherlist_OBSOLETED",
}
VULNERABILITIES = (
    "heartbleed",
    "CCS",
    "ticketbleed",
    "ROBOT",
    "secure_renego",
    "secure_client_renego",
    "CRIME_TLS",
    "BREACH",
    "POODLE_SSL",
    "fallback_SCSV",
    "SWEET32",
    "FREAK",
    "DROWN",
    "LOGJAM",
    "LOGJAM-common_primes",
    "BEAST",
    "BEAST_CBC_TLS1",
    "LUCKY13",
    "RC4",
)
CHAIN = (
    "cert_chain_of_trust",
    "certs_countServer",
    "certs_list_ordering_problem",
    "cert_trust",
    "cert_expirationStatus",
)
KEY = ("cert_signatureAlgorithm", "cert_keySize")
# Shown, not judged: properties of the dev PKI's server certificate (a PKIoverheid one names
# its CRL) and of the loopback set-up, not of the TLS configuration this script checks.
REPORTED_ONLY = ("cert_revocation", "OCSP_stapling", "sessionresumption_ticket")
BAD_SEVERITIES = {"LOW", "MEDIUM", "HIGH", "CRITICAL"}


@dataclass(frozen=True)
class Finding:
    id: str
    severity: str
    finding: str


def _wrapper(directory: Path, certificate: Path, key: Path) -> Path:
    """An `openssl` that adds the client certificate to every s_client, for $OPENSSL."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise SystemExit("openssl is missing (apt-get install openssl)")
    script = directory / "openssl-mtls"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = s_client ] && ! printf " %s " "$*" | grep -q -- " -help "; then\n'
        "    shift\n"
        f'    exec {openssl} s_client -cert "{certificate}" -key "{key}" "$@"\n'
        "fi\n"
        f'exec {openssl} "$@"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _testssl() -> str:
    found = shutil.which("testssl") or shutil.which("testssl.sh")
    if found is None:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "testssl.sh"],
            check=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
        found = shutil.which("testssl") or shutil.which("testssl.sh")
    if found is None:
        raise SystemExit("testssl.sh could not be installed")
    return found


def run_testssl(
    port: int, directory: Path, pki_root: Path, client: tuple[Path, Path]
) -> list[Finding]:
    """testssl's findings against 127.0.0.1:`port`, its console output in directory/testssl.log."""
    report = directory / "testssl.json"
    command = [
        _testssl(),
        *CHECKS,
        "--quiet",
        "--color",
        "0",
        "--warnings",
        "off",
        "--add-ca",
        str(pki_root),
        "--jsonfile",
        str(report),
        f"127.0.0.1:{port}",
    ]
    env = {**os.environ, "OPENSSL": str(_wrapper(directory, *client))}
    with (directory / "testssl.log").open("wb") as log:
        subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    return [
        Finding(item["id"], item.get("severity", ""), item.get("finding", ""))
        for item in json.loads(report.read_text(encoding="utf-8"))
    ]


def _of(findings: Sequence[Finding], ids: Iterable[str]) -> list[Finding]:
    wanted = set(ids)
    return [f for f in findings if f.id in wanted]


def _prefixed(findings: Sequence[Finding], *prefixes: str) -> list[Finding]:
    return [f for f in findings if f.id.startswith(prefixes)]


def judge(findings: Sequence[Finding]) -> tuple[dict[str, list[Finding]], list[str]]:
    """The summary's sections, and every reason the configuration fails (none: it passes)."""
    sections = {
        "protocols": _of(findings, PROTOCOLS_ALLOWED | PROTOCOLS_REFUSED),
        "ciphers": _prefixed(findings, "cipherlist_", "cipherorder_", "cipher_order")
        + _of(findings, ("protocol_negotiated", "cipher_negotiated")),
        "forward secrecy": _prefixed(findings, "FS", "PFS", "DH_groups"),
        "vulnerabilities": _of(findings, VULNERABILITIES),
        "chain": _of(findings, CHAIN) + _prefixed(findings, "intermediate_cert"),
        "server key": _of(findings, KEY),
        "reported only": _of(findings, REPORTED_ONLY),
    }
    problems: list[str] = []
    for finding in sections["protocols"]:
        offered = finding.finding.startswith("offered")
        if finding.id in PROTOCOLS_REFUSED and offered:
            problems.append(f"weak protocol offered: {finding.id}")
        if finding.id in PROTOCOLS_ALLOWED and not offered:
            problems.append(f"{finding.id} not offered: {finding.finding}")
    for finding in _of(findings, WEAK_CIPHER_LISTS):
        if not finding.finding.startswith("not offered"):
            problems.append(f"weak ciphers offered: {finding.id} ({finding.finding})")
    fs = _of(findings, ("FS", "PFS"))
    if not fs or fs[0].severity in BAD_SEVERITIES:
        problems.append(f"forward secrecy: {fs[0].finding if fs else 'not reported'}")
    for name in ("vulnerabilities", "ciphers", "forward secrecy", "server key"):
        for finding in sections[name]:
            if finding.severity in BAD_SEVERITIES:
                problems.append(f"{finding.id} ({finding.severity}): {finding.finding}")
    trust = _of(findings, ("cert_chain_of_trust",))
    if not trust or not trust[0].finding.startswith("passed"):
        problems.append(f"chain of trust: {trust[0].finding if trust else 'not reported'}")
    count = _of(findings, ("certs_countServer",))
    if not count or not count[0].finding.isdigit() or int(count[0].finding) < 2:
        # The server certificate is issued by an intermediate: it must be sent along.
        problems.append(
            f"chain incomplete: {count[0].finding if count else '?'} certificate(s) sent"
        )
    for finding in sections["chain"]:
        if finding.severity in BAD_SEVERITIES and finding.id != "cert_chain_of_trust":
            problems.append(f"{finding.id} ({finding.severity}): {finding.finding}")
    scan_errors = [f for f in findings if f.id.startswith("scanProblem") or f.severity == "FATAL"]
    problems += [f"testssl could not test: {f.finding}" for f in scan_errors]
    return sections, problems


def print_summary(sections: dict[str, list[Finding]], problems: Sequence[str]) -> None:
    for name, items in sections.items():
        print(f"{name}:")
        for finding in items:
            print(f"  {finding.id:<28} {finding.severity:<8} {finding.finding}")
    print()
    if problems:
        print(f"FAIL: {len(problems)} finding(s)")
        for problem in problems:
            print(f"  - {problem}")
    else:
        print(
            "PASS: no weak protocol or cipher, forward secrecy throughout, no vulnerability,"
            " chain complete and trusted"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write testssl's JSON findings here")
    parser.add_argument("--log", type=Path, help="also write testssl's console output here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="testssl-") as temporary:
        directory = Path(temporary)
        files = build_pki(directory / "certs")
        client = files.clients[GEMEENTE]
        with (
            database("sqlite", directory) as database_url,
            running_server(directory, files, database_url) as server,
        ):
            print(f"adapter on 127.0.0.1:{server.port}; testssl {' '.join(CHECKS)} ...", flush=True)
            findings = run_testssl(
                server.port, directory, files.root_ca, (client.certificate, client.private_key)
            )
        if args.json:
            shutil.copy(directory / "testssl.json", args.json)
        if args.log:
            shutil.copy(directory / "testssl.log", args.log)
    sections, problems = judge(findings)
    print_summary(sections, problems)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
