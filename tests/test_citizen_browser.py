"""The citizen pages in a real browser: Debian's chromium, headless, driven by Playwright.

Everything is real: `dk-adapter serve` over mTLS takes a letter over ebMS and a zaak over
WUS, the citizen listener (`python -m adapter.citizen.server`) serves the same database, and
ValidateAbonnementen answers the organisation. The browser is the system's chromium
(`executable_path`); nothing is downloaded. axe-core checks every page, and a screenshot of
every page is kept in var/test-artifacts/citizen/.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import text

from tests.berichtverwerk_samples import batch_xml, minimal_pdf
from tests.conftest import GEMEENTE, ROOT, STRIKT, Pki, Server
from tests.ebms_helpers import send
from tests.test_abonnementen import ask
from tests.test_abonnementen import zeep_client as abonnementen_client
from tests.test_lopende_zaken import client_for, status, zaak

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "citizen"
AXE = Path(__file__).parent / "data" / "axe-core" / "axe.min.js"
CITIZEN = "999993653"  # active, opted in for the Gemeente and Gemeente Strikt
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PDF = minimal_pdf(20_000)
HOSTILE = "Zie https://voorbeeldstad.example/betalen\\r\\n<script>alert(1)</script>"
# What receipts, the audit export, usage reports and ebMS answers are made of. For the outbox
# only what is sent: its delivery bookkeeping moves on its own while the result is retried.
ORGANISATION_FACING = {
    "receipts": "*",
    "audit_log": "*",
    "ebms_messages": "*",
    "outbox": "message_id, ref_to_message_id, to_oin, action, content_type, body",
}


@pytest.fixture(scope="module")
def citizen_url(server: Server) -> str:
    """The citizen listener that `dk-adapter serve` started beside the mTLS port."""
    return server.citizen_url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is required: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser: Browser, citizen_url: str) -> Iterator[Page]:
    # bypass_csp only so the test can inject axe-core; the pages themselves allow no script.
    context = browser.new_context(base_url=citizen_url, accept_downloads=True, bypass_csp=True)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="module")
def letter(server: Server, pki: Pki) -> str:
    """A letter with a personal PDF, delivered over ebMS by the Gemeente."""
    sent = send(
        server,
        pki,
        batch_xml(
            [
                {
                    "Onderwerp": "Uw aanslag 2026",
                    "BerichtTekst": HOSTILE,
                    "EindDatumHandelingsTermijn": datetime(2026, 12, 31, 12, tzinfo=UTC),
                    "bijlagen": [(PDF, "Aanslagbiljet 2026")],
                }
            ]
        ),
    )
    assert sent.response.status_code == 200, sent.response.text
    [(bericht_id, code)] = sent.codes.items()
    assert code == "Verwerkt"
    return bericht_id


def shoot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(target), full_page=True)
    return target


def accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on the current page."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("async () => await axe.run(document)")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{page.url}: {bad}"


def snapshot(server: Server) -> dict[str, list[Any]]:
    with server.engine.connect() as conn:
        return {
            table: [
                tuple(row)
                for row in conn.execute(text(f"SELECT {columns} FROM {table} ORDER BY 1"))  # noqa: S608
            ]
            for table, columns in ORGANISATION_FACING.items()
        }


def test_1_dev_login_leads_to_the_inbox_with_the_new_letter(page: Page, letter: str) -> None:
    page.goto("/")
    assert page.url.endswith("/login")
    assert page.get_by_text("Ontwikkel-login — geen DigiD").is_visible()
    accessible(page)
    shoot(page, "login")
    page.get_by_label("Burgerservicenummer").fill(CITIZEN)
    page.get_by_role("button", name="Inloggen").click()
    assert page.get_by_role("heading", name="Berichtenbox", level=1).is_visible()
    row = page.get_by_role("row").filter(has_text="Uw aanslag 2026")
    assert "Ongelezen" in row.inner_text()
    accessible(page)
    shoot(page, "berichtenbox")


def test_2_the_letter_opens_inert_and_its_pdf_downloads_byte_for_byte(
    page: Page, letter: str, server: Server, pki: Pki
) -> None:
    gemeente, _ = abonnementen_client(server, pki, GEMEENTE)
    answer_before = ask(gemeente, GEMEENTE, [CITIZEN])
    before = snapshot(server)  # after the question, whose own receipt is stored

    page.goto("/")
    page.get_by_role("link", name="Uw aanslag 2026").click()
    assert page.get_by_role("heading", name="Uw aanslag 2026").is_visible()
    assert page.get_by_text("Gemeente Voorbeeldstad").first.is_visible()
    assert page.get_by_text("31 december 2026").is_visible()
    body = page.locator(".mo-tekst")
    assert "<script>alert(1)</script>" in body.inner_text()  # shown as text, not run
    assert body.locator("script").count() == 0
    assert body.get_by_role("link").get_attribute("href") == "https://voorbeeldstad.example/betalen"
    accessible(page)
    shoot(page, "bericht")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Aanslagbiljet 2026").click()
    download = download_info.value
    assert download.suggested_filename == "Aanslagbiljet 2026.pdf"
    assert Path(download.path()).read_bytes() == PDF

    # Reading changed nothing an organisation can see.
    assert snapshot(server) == before
    assert ask(gemeente, GEMEENTE, [CITIZEN]) == answer_before


def test_3_archiving_moves_the_letter_out_of_the_inbox(page: Page, letter: str) -> None:
    page.goto(f"/berichten/{letter}")
    page.get_by_role("button", name="Archiveren").click()
    assert page.get_by_text("Uw aanslag 2026").count() == 0
    page.get_by_role("link", name="Archief").click()
    assert page.get_by_role("link", name="Uw aanslag 2026").is_visible()
    accessible(page)
    shoot(page, "archief")


def test_4_a_vinkje_changes_the_next_validate_abonnementen_answer(
    page: Page, server: Server, pki: Pki
) -> None:
    strikt, _ = abonnementen_client(server, pki, STRIKT)
    assert ask(strikt, STRIKT, [CITIZEN]) == [(CITIZEN, True)]
    page.goto("/instellingen")
    by_law = page.get_by_label("Belastingdienst (test)")
    assert by_law.is_checked() and by_law.is_disabled()
    page.get_by_label("Gemeente Strikt (2W-be)").uncheck()
    page.get_by_role("button", name="Opslaan").click()
    assert page.get_by_text("Uw instellingen zijn opgeslagen").is_visible()
    accessible(page)
    shoot(page, "instellingen")
    assert ask(strikt, STRIKT, [CITIZEN]) == [(CITIZEN, False)]
    with server.engine.connect() as conn:
        # The history also holds the opt-in the accounts import recorded; the newest row is
        # the citizen's own change.
        subscribed, source = conn.execute(
            text(
                "SELECT subscribed, source FROM subscription_changes"
                " WHERE bsn = :bsn AND oin = :oin ORDER BY changed_at DESC, id DESC LIMIT 1"
            ),
            {"bsn": CITIZEN, "oin": STRIKT},
        ).one()
    assert (subscribed is False or subscribed == 0) and source == "instellingen"


def test_5_a_zaak_and_its_history_are_shown(page: Page, server: Server, pki: Pki) -> None:
    gemeente, _ = client_for(server, pki, GEMEENTE)
    gemeente.service.ZaakAanleveren(
        zaak=zaak("Z-BROWSER", status=status("Aanvraag ontvangen", "2026-01-10T09:30:00"))
    )
    gemeente.service.StatusAanleveren(
        identificatie="Z-BROWSER", status=status("In behandeling", "2026-01-20T10:00:00")
    )
    page.goto("/")
    page.get_by_role("link", name="Lopende zaken").click()
    row = page.get_by_role("row").filter(has_text="Aanvraag omgevingsvergunning")
    assert "In behandeling" in row.inner_text()
    accessible(page)
    shoot(page, "zaken")
    row.get_by_role("link").click()
    history = page.get_by_role("table").inner_text()
    assert "In behandeling (huidige status)" in history
    assert "Aanvraag ontvangen" in history
    accessible(page)
    shoot(page, "zaak")


def test_6_logging_out_ends_the_session(page: Page) -> None:
    page.goto("/")
    page.get_by_role("button", name="Uitloggen").click()
    assert page.url.endswith("/login")
    page.goto("/zaken")
    assert page.url.endswith("/login")
