"""The conformance kit's HTML report in a real browser: Debian's chromium via Playwright.

A report of the kit's run against a broken stand-in (failures with rule, fix, request and
response) and one of a passing run (with its not-run cases) are opened from file, checked for
what a leverancier must be able to read, and screenshotted into var/test-artifacts/conformance/.
The page is self-contained: the browser may load nothing but the file itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Request, sync_playwright

from adapter.kit.conformance.model import CaseResult, Exchange, Finding, Report, Status
from adapter.kit.conformance.reports import html_report
from tests.conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "conformance"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), "Debian's chromium is required: make chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        yield browser
        browser.close()


def _report() -> Report:
    """A report as the kit writes it for a broken endpoint: one pass, one failure, one not run."""
    report = Report("server", "https://stand-in.example:8443", datetime(2026, 12, 1, tzinfo=UTC))
    report.results += [
        CaseResult("ebms.ping", "ebMS Ping answered with Pong", "ebms", "§2.9", Status.PASSED),
        CaseResult(
            "wus.validate-abonnementen.2w-be",
            "ValidateAbonnementen under Digikoppeling 2W-be (WS-Addressing)",
            "wus",
            "SPEC-digikoppeling §1.3 WA001",
            Status.FAILED,
            (
                Finding(
                    "wsa:RelatesTo is None, expected the request's urn:uuid:1",
                    "SPEC-digikoppeling §1.3 WA001",
                    "answer with wsa:RelatesTo",
                ),
            ),
            (
                Exchange(
                    "2W-be request",
                    b"<s:Envelope><script>alert(1)</script></s:Envelope>",
                    b"<s:Envelope/>",
                    200,
                ),
            ),
        ),
        CaseResult(
            "ebms.berichtverwerk.osb-rm-s",
            "BerichtVerwerk under osb-rm-s (signed)",
            "ebms",
            "SPEC-digikoppeling §2.7",
            Status.NOT_RUN,
            reason="not run: WS-Security/ebMS signing not yet supported",
            required=False,
        ),
    ]
    return report


def test_the_html_report_shows_failures_with_rule_fix_and_exchanges(
    browser: Browser, tmp_path: Path
) -> None:
    page_file = tmp_path / "report.html"
    page_file.write_text(html_report(_report()), encoding="utf-8")
    page = browser.new_page()
    requested: list[str] = []

    def record(request: Request) -> None:
        requested.append(request.url)

    page.on("request", record)
    page.goto(page_file.as_uri())
    assert requested == [page_file.as_uri()]  # self-contained: nothing else is loaded
    assert page.locator(".summary").inner_text().endswith("NOT CONFORMANT")
    assert page.locator("td.failed").inner_text() == "FAILED"
    assert page.locator("td.notrun").inner_text() == "NOT RUN"
    assert "not run: WS-Security/ebMS signing not yet supported" in page.inner_text("body")
    page.click("td.failed a")
    section = page.locator("section#wus\\.validate-abonnementen\\.2w-be")
    assert "Rule: SPEC-digikoppeling §1.3 WA001" in section.inner_text()
    assert "Fix: answer with wsa:RelatesTo" in section.inner_text()
    # The request is shown as text, never run as markup.
    assert "<script>alert(1)</script>" in section.locator("pre").first.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()


def test_reports_written_by_the_kit_runs_open_in_the_browser(browser: Browser) -> None:
    """The pages the server-mode tests wrote (own adapter, broken stand-in), when present."""
    pages = sorted(ARTIFACTS.glob("*.html"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page_file = ARTIFACTS / "sample.html"
    page_file.write_text(html_report(_report()), encoding="utf-8")
    for path in [*pages, page_file]:
        page = browser.new_page()
        page.goto(path.as_uri())
        assert page.locator("h1").inner_text().startswith("Digikoppeling conformance report")
        assert page.locator("tbody tr").count() >= 1
        page.screenshot(path=str(path.with_suffix(".png")), full_page=True)
        page.close()
