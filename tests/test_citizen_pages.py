"""The citizen pages through their WSGI app (no socket), on SQLite and PostgreSQL.

The browser test (test_citizen_browser.py) covers the same flows over a real listener; here
each rule gets its own small test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.test import Client, TestResponse

from adapter.citizen.app import CitizenApp
from adapter.citizen.server import announcement
from adapter.store.accounts import Accounts
from adapter.store.db import Database
from adapter.store.models import (
    Account,
    Bericht,
    BerichtBijlage,
    CitizenSettings,
    Subscription,
    SubscriptionChange,
)
from tests.conftest import BELASTINGDIENST, GEMEENTE, postgres_schema
from tests.test_citizen_support import ACTIVE, INACTIVE, SECOND, World, make_world

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\nstartxref\n0\n%%EOF\n"
STRIKT = "00000099000000003000"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'adapter.db'}"
        return
    with postgres_schema("citizen") as url:
        yield url


@dataclass
class Browser:
    """A werkzeug test client with the citizen app, a movable clock, and a login helper."""

    world: World
    app: CitizenApp
    client: Client
    clock: list[datetime]

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.client.get(path, **kw)

    def csrf(self, path: str = "/") -> str:
        match = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert match, "page has no CSRF token"
        return match.group(1)

    def post(self, path: str, data: dict[str, Any], csrf_from: str = "/") -> TestResponse:
        return self.client.post(path, data={"csrf": self.csrf(csrf_from), **data})

    def login(self, bsn: str = ACTIVE) -> TestResponse:
        page = self.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        return self.client.post("/login", data={"csrf": token.group(1), "bsn": bsn})


@pytest.fixture
def browser(tmp_path: Path, database_url: str) -> Iterator[Browser]:
    world = make_world(tmp_path, database_url)
    clock = [NOW]
    app = CitizenApp(world.config, world.database, clock=lambda: clock[0])
    try:
        yield Browser(world, app, Client(app), clock)
    finally:
        world.database.dispose()


def test_without_a_session_every_page_leads_to_the_login(browser: Browser) -> None:
    for path in ("/", "/zaken", "/instellingen", "/berichten/x"):
        response = browser.get(path)
        assert (response.status_code, response.headers["Location"]) == (303, "/login")


def test_the_dev_login_is_announced_on_every_page(browser: Browser) -> None:
    assert "Ontwikkel-login — geen DigiD" in browser.get("/login").text
    browser.login()
    for path in ("/", "/zaken", "/instellingen"):
        assert "Ontwikkel-login — geen DigiD" in browser.get(path).text


def test_logging_in_sets_a_strict_session_cookie(browser: Browser) -> None:
    response = browser.login()
    assert (response.status_code, response.headers["Location"]) == (303, "/")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("mo_sessie="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # served over plain HTTP here; https public_url adds it
    assert '<h1 class="utrecht-heading-1">Berichtenbox</h1>' in browser.get("/").text


def test_a_login_without_the_forms_token_is_refused(browser: Browser) -> None:
    browser.get("/login")
    response = browser.client.post("/login", data={"bsn": ACTIVE, "csrf": "guess"})
    assert response.status_code == 403
    assert browser.get("/").status_code == 303


def test_a_bsn_failing_the_elfproef_or_without_account_is_refused(browser: Browser) -> None:
    assert "geldig burgerservicenummer" in browser.login("123456789").text
    assert "geen account" in browser.login("123456782").text


def test_the_first_login_activates_the_account(browser: Browser) -> None:
    browser.login(INACTIVE)
    with browser.world.database.transaction() as session:
        assert session.get_one(Account, INACTIVE).active is True
        assert session.get_one(CitizenSettings, INACTIVE).activated_at == NOW


def test_without_dev_login_there_is_no_way_in(tmp_path: Path, database_url: str) -> None:
    world = make_world(tmp_path, database_url)
    config = world.config.__class__(
        **{
            **world.config.__dict__,
            "citizen": world.config.citizen.__class__(
                **{**world.config.citizen.__dict__, "dev_login": False}
            ),
        }
    )
    client = Client(CitizenApp(config, world.database))
    page = client.get("/login")
    assert page.status_code == 503
    assert "Ontwikkel-login" not in page.text
    assert 'name="bsn"' not in page.text
    world.database.dispose()


def test_a_session_ends_after_15_idle_minutes_and_at_logout(browser: Browser) -> None:
    browser.login()
    browser.clock[0] += timedelta(minutes=14)
    assert browser.get("/").status_code == 200
    browser.clock[0] += timedelta(minutes=14)  # 14 since the last request: still alive
    assert browser.get("/").status_code == 200
    browser.clock[0] += timedelta(minutes=15, seconds=1)
    assert browser.get("/").status_code == 303

    browser.login()
    assert browser.post("/uitloggen", {}).headers["Location"] == "/login"
    assert browser.get("/").status_code == 303


def test_pages_carry_the_security_headers(browser: Browser) -> None:
    browser.login()
    headers = browser.get("/").headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src" not in csp and "default-src 'none'" in csp  # so no script at all
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"


def test_the_inbox_lists_visible_letters_newest_first_with_unread_marked(
    browser: Browser,
) -> None:
    world = browser.world
    world.letter(ACTIVE, NOW - timedelta(days=2), onderwerp="Oudste brief")
    world.letter(ACTIVE, NOW - timedelta(days=1), onderwerp="Nieuwste brief", oin=BELASTINGDIENST)
    world.letter(ACTIVE, NOW + timedelta(hours=1), onderwerp="Nog niet zichtbaar")
    world.letter(SECOND, NOW - timedelta(days=1), onderwerp="Van een ander")
    browser.login()
    page = browser.get("/").text
    assert page.index("Nieuwste brief") < page.index("Oudste brief")
    assert "Nog niet zichtbaar" not in page and "Van een ander" not in page
    assert page.count("Ongelezen</span>") == 2
    assert "2 berichten, waarvan 2 ongelezen" in page


def test_the_inbox_filters_by_organisation_and_pages(browser: Browser) -> None:
    for day in range(7):
        browser.world.letter(ACTIVE, NOW - timedelta(days=day + 1), onderwerp=f"Gemeente {day}")
    browser.world.letter(ACTIVE, NOW - timedelta(hours=1), onderwerp="Aanslag", oin=BELASTINGDIENST)
    browser.login()
    first = browser.get("/").text
    assert "Pagina 1 van 2" in first  # page size 5 in the test configuration
    assert "Gemeente 4" not in first
    second = browser.get("/?pagina=2").text
    assert "Gemeente 4" in second and "Gemeente 6" in second
    filtered = browser.get(f"/?afzender={BELASTINGDIENST}").text
    assert "Aanslag" in filtered and "Gemeente 0" not in filtered
    assert "1 bericht," in filtered


def test_a_letter_page_shows_sender_dates_text_and_attachments(browser: Browser) -> None:
    letter = browser.world.letter(
        ACTIVE,
        NOW - timedelta(hours=2),
        onderwerp="Uw aanslag",
        tekst="Regel een\\r\\nRegel twee, zie https://voorbeeldstad.example/betalen.",
        eind=datetime(2026, 4, 15, 10, 0, tzinfo=UTC),
        pdfs=[("Aanslagbiljet", PDF)],
        algemeen=[("Uitleg bij de aanslag", PDF + b"%algemeen")],
    )
    browser.login()
    page = browser.get(f"/berichten/{letter}").text
    assert "Gemeente Voorbeeldstad" in page
    assert "2 maart 2026 om 08:00" in page  # Europe/Amsterdam
    assert "Reageer uiterlijk op" in page and "15 april 2026" in page
    assert "Regel een<br>\nRegel twee" in page
    assert (
        '<a href="https://voorbeeldstad.example/betalen" rel="noopener noreferrer nofollow"' in page
    )
    assert "Aanslagbiljet" in page and "algemene bijlage" in page


def test_opening_a_letter_records_it_once(browser: Browser) -> None:
    letter = browser.world.letter(ACTIVE, NOW - timedelta(hours=2))
    browser.login()
    browser.get(f"/berichten/{letter}")
    browser.clock[0] += timedelta(minutes=5)
    browser.get(f"/berichten/{letter}")
    with browser.world.database.transaction() as session:
        assert session.get_one(Bericht, letter).opened_at == NOW
    assert "Ongelezen</span>" not in browser.get("/").text


def test_hostile_letter_content_renders_inert(browser: Browser) -> None:
    letter = browser.world.letter(
        ACTIVE,
        NOW - timedelta(hours=1),
        onderwerp='<img src=x onerror="alert(1)">',
        tekst=(
            "<script>alert('x')</script> klik javascript:alert(1) of "
            '<a href="javascript:alert(2)">hier</a> \u202egnp.exe\u202c '
            'https://ok.example/"onmouseover="alert(3)'
        ),
        referentie="<b>kenmerk</b>",
    )
    browser.login()
    page = browser.get(f"/berichten/{letter}").text
    inbox = browser.get("/").text
    for html in (page, inbox):
        assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert "\u202e" not in page and "\u202c" not in page
    assert "onmouseover=" not in page.replace("&#34;onmouseover=&#34;", "")
    assert '<a href="https://ok.example/" rel=' in page
    assert "&lt;b&gt;kenmerk&lt;/b&gt;" in page


def test_a_letter_page_names_the_berichttype_and_links_to_the_senders_own_environment(
    browser: Browser,
) -> None:
    # conf/organisations.toml: the Gemeente's BESLUIT is "Besluit" with a link template,
    # ZAAK "Bericht over uw zaak" without one.
    world = browser.world
    linked = world.letter(ACTIVE, NOW - timedelta(hours=1), referentie="AB 12 & C")
    plain = world.letter(ACTIVE, NOW - timedelta(hours=1), bericht_type="ZAAK")
    no_referentie = world.letter(ACTIVE, NOW - timedelta(hours=1), referentie=None)
    unknown = world.letter(ACTIVE, NOW - timedelta(hours=1), bericht_type="VERVALEN")
    browser.login()

    page = browser.get(f"/berichten/{linked}").text
    assert '<dd class="utrecht-data-list__item-value">Besluit</dd>' in page
    # Quoted into the URL, then escaped for HTML; a plain link, so it opens in the same tab.
    assert (
        '<a class="utrecht-link" href="https://mijn.voorbeeldstad.example/berichten'
        '?bron=mijnoverheid&amp;kenmerk=AB%2012%20%26%20C">Naar Gemeente Voorbeeldstad</a>'
    ) in page
    assert "AB 12 &amp; C" in page  # the Kenmerk as text
    assert 'target="' not in page

    page = browser.get(f"/berichten/{plain}").text
    assert "Bericht over uw zaak" in page and "Naar Gemeente Voorbeeldstad" not in page
    page = browser.get(f"/berichten/{no_referentie}").text
    assert "Besluit" in page and "Naar Gemeente Voorbeeldstad" not in page
    page = browser.get(f"/berichten/{unknown}").text  # no longer configured: its code
    assert '<dd class="utrecht-data-list__item-value">VERVALEN</dd>' in page
    assert "Naar Gemeente Voorbeeldstad" not in page


def test_the_start_up_line_names_the_address_and_a_bsn_to_log_in_with(
    browser: Browser, tmp_path: Path
) -> None:
    world = browser.world
    with world.database.transaction() as session:  # as in accounts.example.csv: two opt-ins
        session.add(Subscription(bsn=ACTIVE, oin=STRIKT, created_at=NOW))
    assert announcement(world.config, world.database) == (
        "Burgerpagina's: http://127.0.0.1:8080/ (ontwikkel-login met BSN 999993653)"
    )
    config = replace(world.config, citizen=replace(world.config.citizen, dev_login=False))
    assert announcement(config, world.database) == "Burgerpagina's: http://127.0.0.1:8080/"
    empty = Database(f"sqlite:///{tmp_path / 'leeg.db'}")
    empty.create_schema()
    try:
        assert "nog geen accounts" in announcement(world.config, empty)
    finally:
        empty.dispose()


def test_attachments_download_as_pdf_with_their_exact_bytes(browser: Browser) -> None:
    letter = browser.world.letter(
        ACTIVE, NOW - timedelta(hours=1), pdfs=[("Beschikking 2026 ü", PDF)]
    )
    browser.login()
    response = browser.get(f"/berichten/{letter}/bijlagen/persoonlijk/1")
    assert response.status_code == 200
    assert response.data == PDF
    assert response.mimetype == "application/pdf"
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="Beschikking 2026 _.pdf"')
    assert "filename*=UTF-8''Beschikking%202026%20%C3%BC.pdf" in disposition
    assert browser.get(f"/berichten/{letter}/bijlagen/persoonlijk/2").status_code == 404


def test_another_citizens_letter_and_attachment_do_not_exist(browser: Browser) -> None:
    other = browser.world.letter(SECOND, NOW - timedelta(hours=1), pdfs=[("B", PDF)])
    browser.login()
    assert browser.get(f"/berichten/{other}").status_code == 404
    assert browser.get(f"/berichten/{other}/bijlagen/persoonlijk/1").status_code == 404
    response = browser.post(f"/berichten/{other}/verplaatsen", {"naar": "prullenbak"})
    assert response.status_code == 404


def test_archiving_needs_the_csrf_token(browser: Browser) -> None:
    letter = browser.world.letter(ACTIVE, NOW - timedelta(hours=1), onderwerp="Te archiveren")
    browser.login()
    refused = browser.client.post(f"/berichten/{letter}/verplaatsen", data={"naar": "archief"})
    assert refused.status_code == 403
    moved = browser.post(f"/berichten/{letter}/verplaatsen", {"naar": "archief"})
    assert moved.status_code == 303
    assert "Te archiveren" not in browser.get("/").text
    assert "Te archiveren" in browser.get("/?map=archief").text


def test_emptying_the_bin_removes_content_for_good_but_keeps_shared_attachments(
    browser: Browser,
) -> None:
    world = browser.world
    shared = PDF + b"%gedeeld"
    binned = world.letter(
        ACTIVE,
        NOW - timedelta(hours=1),
        onderwerp="Weg ermee",
        pdfs=[("Persoonlijk", PDF + b"%eigen")],
        algemeen=[("Folder", shared)],
    )
    kept = world.letter(ACTIVE, NOW - timedelta(hours=1), algemeen=[("Folder", shared)])
    browser.login()
    browser.post(f"/berichten/{binned}/verplaatsen", {"naar": "prullenbak"})
    assert "Weg ermee" in browser.get("/?map=prullenbak").text
    assert browser.post("/prullenbak/legen", {}, csrf_from="/?map=prullenbak").status_code == 303

    assert browser.get(f"/berichten/{binned}").status_code == 404
    assert "Weg ermee" not in browser.get("/?map=prullenbak").text
    with world.database.transaction() as session:
        row = session.get_one(Bericht, binned)
        assert (row.folder, row.onderwerp, row.tekst, row.referentie) == ("gewist", "", None, None)
        links = session.scalars(select(BerichtBijlage).where(BerichtBijlage.bericht_id == binned))
        assert list(links) == []
    import hashlib

    assert not world.blobs.path(hashlib.sha256(PDF + b"%eigen").hexdigest()).exists()
    assert world.blobs.path(hashlib.sha256(shared).hexdigest()).exists()
    assert browser.get(f"/berichten/{kept}/bijlagen/algemeen/1").data == shared


def test_settings_change_address_reminders_and_opt_ins_with_history(browser: Browser) -> None:
    browser.login()
    page = browser.get("/instellingen").text
    # By law: checked and not changeable; the others as the citizen chose.
    assert re.search(rf'id="org-{BELASTINGDIENST}" checked disabled', page)
    assert re.search(rf'name="organisatie" value="{GEMEENTE}" checked', page)
    assert re.search(rf'name="organisatie" value="{STRIKT}">', page)

    response = browser.post(
        "/instellingen",
        {"email": "nieuw@example.nl", "organisatie": [STRIKT, BELASTINGDIENST]},
        csrf_from="/instellingen",
    )
    assert "Uw instellingen zijn opgeslagen" in response.text
    with browser.world.database.transaction() as session:
        assert session.get_one(Account, ACTIVE).email == "nieuw@example.nl"
        assert session.get_one(CitizenSettings, ACTIVE).reminders is False
        assert set(session.scalars(select(Subscription.oin).where(Subscription.bsn == ACTIVE))) == {
            STRIKT
        }
        changes = [
            (c.oin, c.subscribed, c.changed_at, c.source)
            for c in session.scalars(select(SubscriptionChange).order_by(SubscriptionChange.id))
        ]
        assert changes == [
            (STRIKT, True, NOW, "instellingen"),
            (GEMEENTE, False, NOW, "instellingen"),
        ]
        accounts = Accounts(session)
        assert accounts.may_receive([ACTIVE], GEMEENTE, by_law=False) == {ACTIVE: False}
        assert accounts.may_receive([ACTIVE], STRIKT, by_law=False) == {ACTIVE: True}


def test_a_bad_email_address_is_refused_and_nothing_changes(browser: Browser) -> None:
    browser.login()
    response = browser.post(
        "/instellingen", {"email": "geen adres", "herinneringen": "aan"}, csrf_from="/instellingen"
    )
    assert response.status_code == 400
    assert "geldig e-mailadres" in response.text
    with browser.world.database.transaction() as session:
        assert session.get_one(Account, ACTIVE).email == "burger.een@example.nl"


def test_lopende_zaken_show_open_and_recently_closed_zaken_with_history(
    browser: Browser,
) -> None:
    world = browser.world
    open_zaak = world.zaak_status(ACTIVE, NOW - timedelta(days=3), status="Ontvangen")
    world.zaak_status(
        ACTIVE,
        NOW - timedelta(days=40),
        omschrijving="Parkeervergunning",
        status="Afgehandeld",
        einddatum=date(2026, 2, 1),
    )
    world.zaak_status(
        ACTIVE, NOW - timedelta(days=800), omschrijving="Oude zaak", einddatum=date(2024, 1, 1)
    )
    other = world.zaak_status(SECOND, NOW, omschrijving="Van een ander")
    browser.login()
    page = browser.get("/zaken").text
    assert "Aanvraag omgevingsvergunning" in page and "Ontvangen" in page
    assert "Parkeervergunning" in page and "Afgesloten op 1 februari 2026" in page
    assert "Oude zaak" not in page and "Van een ander" not in page
    detail = browser.get(f"/zaken/{open_zaak}").text
    assert "Statusgeschiedenis" in detail and "Ontvangen (huidige status)" in detail
    assert 'href="https://voorbeeldstad.example/zaken/1"' in detail
    assert browser.get(f"/zaken/{other}").status_code == 404


def test_static_files_are_served_and_nothing_else(browser: Browser) -> None:
    assert browser.get("/static/site.css").mimetype == "text/css"
    assert browser.get("/static/../app.py").status_code == 404
    assert browser.get("/static/README.md").status_code == 404
