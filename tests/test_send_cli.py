"""`dk-adapter send` and `dk-adapter cpa check` as a leverancier runs them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.berichtverwerk_samples import minimal_pdf
from tests.conftest import CONF, GEMEENTE, STRIKT, Pki, Server, run_cli


def send(
    server: Server, pki: Pki, oin: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    p12 = pki.files.clients[oin].pkcs12
    return run_cli(
        "send",
        "--endpoint",
        f"{server.url}/berichtenbox/ebms",
        "--cert",
        str(p12),
        "--password",
        "changeit",
        "--ca",
        str(pki.root),
        "--receive-on",
        f"127.0.0.1:{server.peer_port}",
        "--timeout",
        "30",
        *args,
        config=server.config,
        database_url=server.database_url,
    )


def test_send_delivers_a_letter_with_attachments_and_prints_the_asynchronous_result(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    (tmp_path / "beschikking.pdf").write_bytes(minimal_pdf(20_000))
    (tmp_path / "folder.pdf").write_bytes(minimal_pdf(300_000))
    done = send(
        server,
        pki,
        GEMEENTE,
        tmp_path,
        "--bsn",
        "999993653",
        "--type",
        "BESLUIT",
        "--subject",
        "Uw vergunning",
        "--attach",
        str(tmp_path / "beschikking.pdf"),
        "--general",
        str(tmp_path / "folder.pdf"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Acknowledgment received" in done.stdout
    assert "BerichtVerwerkResponse received and acknowledged" in done.stdout
    assert "AantalBerichtenSuccesvolVerwerkt: 1" in done.stdout
    assert done.stdout.count("Verwerkt") >= 2  # in the acknowledgment's receipt and the result's
    assert done.stdout.count("verifies (signed by") == 2


def test_send_shows_per_bericht_refusals_without_failing_the_delivery(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    done = send(
        server,
        pki,
        GEMEENTE,
        tmp_path,
        "--bsn",
        "999990019",
        "--type",
        "BESLUIT",
        "--subject",
        "Test",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "NietActiefOfGeabonneerd" in done.stdout


def test_send_waits_for_the_separate_acknowledgment_when_the_cpa_says_none(
    server: Server, pki: Pki, tmp_path: Path
) -> None:
    done = send(
        server,
        pki,
        STRIKT,
        tmp_path,
        "--bsn",
        "999993653",
        "--type",
        "BESLUIT",
        "--subject",
        "Test",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no synchronous answer" in done.stdout
    assert "AantalBerichtenSuccesvolVerwerkt: 1" in done.stdout


def test_send_reports_an_ebms_refusal(server: Server, pki: Pki, tmp_path: Path) -> None:
    done = send(
        server,
        pki,
        GEMEENTE,
        tmp_path,
        "--cpa-id",
        "ONBEKEND",
        "--bsn",
        "999993653",
        "--type",
        "BESLUIT",
        "--subject",
        "Test",
    )
    assert done.returncode == 1
    assert "MessageError ValueNotRecognized: CPAId ONBEKEND is onbekend" in done.stdout


def test_cpa_check_accepts_the_examples_and_names_what_is_wrong(
    server: Server, tmp_path: Path
) -> None:
    examples = sorted(str(p) for p in (CONF / "cpa").glob("*.xml"))
    ok = run_cli("cpa", "check", *examples, config=server.config, database_url=server.database_url)
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.count(": OK, CPAId") == 3
    # Durations as the CPA writes them (ISO 8601), not as Python prints a timedelta.
    assert "8 retries every PT3H, kept P1D" in ok.stdout
    assert "day," not in ok.stdout and "3:00:00" not in ok.stdout
    broken = tmp_path / "broken.xml"
    broken.write_text(
        Path(examples[0])
        .read_text()
        .replace("https://127.0.0.1:8444/ebms", "http://127.0.0.1:8444/ebms")
    )
    bad = run_cli(
        "cpa", "check", str(broken), config=server.config, database_url=server.database_url
    )
    assert bad.returncode == 1
    assert "1 problem(s)" in bad.stdout and "https" in bad.stdout
