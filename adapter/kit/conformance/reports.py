"""A report three ways: a console table (rich), JUnit XML for CI, a self-contained HTML page.

The HTML page needs nothing but itself (inline CSS, no script, no external resource), so a
leverancier can attach it to a ticket. Every failure shows its findings (the rule broken and
how to fix it) and the request and response of each exchange of the case; not-run cases are
shown as such, in words, in all three forms (JUnit: `skipped`, which CI tools do not count
as passed).
"""

from __future__ import annotations

import html
from pathlib import Path

from lxml import etree
from rich.console import Console
from rich.table import Table

from adapter.kit.conformance.model import CaseResult, Exchange, Report, Status

MAX_SHOWN_BYTES = 64 * 1024  # of each request and response in the HTML page
_STYLE = {Status.PASSED: "green", Status.FAILED: "bold red", Status.NOT_RUN: "yellow"}


def _detail(result: CaseResult) -> str:
    if result.status is Status.NOT_RUN:
        return result.reason or "not run"
    return "\n".join(
        f"{'!' if f.severity == 'error' else '~'} {f.message}" for f in result.findings
    )


def print_table(report: Report, console: Console) -> None:
    table = Table(title=f"Conformance ({report.mode} mode): {report.target}", show_lines=True)
    table.add_column("case")
    table.add_column("result")
    table.add_column("findings / reason", overflow="fold")
    for result in report.results:
        table.add_row(
            f"{result.case_id}\n[dim]{result.title}[/dim]",
            f"[{_STYLE[result.status]}]{result.status.value.upper()}[/]",
            _detail(result),
        )
    console.print(table)
    style = "bold green" if report.passed else "bold red"
    console.print(f"[{style}]{report.summary()}[/]")


def _text(data: bytes) -> str:
    shown = data[:MAX_SHOWN_BYTES].decode("utf-8", "replace")
    if len(data) > MAX_SHOWN_BYTES:
        shown += f"\n… ({len(data) - MAX_SHOWN_BYTES} more bytes not shown)"
    return shown


def junit_xml(report: Report) -> bytes:
    suite = etree.Element(
        "testsuite",
        name=f"dk-adapter conformance ({report.mode} mode)",
        tests=str(len(report.results)),
        failures=str(report.count(Status.FAILED)),
        skipped=str(report.count(Status.NOT_RUN)),
        errors="0",
        timestamp=report.started.isoformat(timespec="seconds"),
        time=f"{sum(r.seconds for r in report.results):.3f}",
    )
    properties = etree.SubElement(suite, "properties")
    etree.SubElement(properties, "property", name="target", value=report.target)
    for result in report.results:
        case = etree.SubElement(
            suite,
            "testcase",
            classname=f"conformance.{result.group}",
            name=result.case_id,
            time=f"{result.seconds:.3f}",
        )
        if result.status is Status.NOT_RUN:
            required = "required, so the run fails" if result.required else "not required"
            etree.SubElement(case, "skipped", message=f"{result.reason} ({required})")
        elif result.status is Status.FAILED:
            failure = etree.SubElement(
                case, "failure", message="; ".join(f.message for f in result.errors)
            )
            failure.text = "\n\n".join(
                f"{f.message}\nrule: {f.rule}\nfix: {f.fix}" for f in result.findings
            )
            exchanges = "\n\n".join(
                f"--- {e.title}: request\n{_text(e.request)}\n--- response (HTTP "
                f"{e.http_status})\n{_text(e.response)}"
                for e in result.exchanges
            )
            etree.SubElement(case, "system-out").text = (
                etree.CDATA(exchanges.replace("]]>", "]]]]><![CDATA[>")) if exchanges else None
            )
    data: bytes = etree.tostring(suite, xml_declaration=True, encoding="utf-8", pretty_print=True)
    return data


_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1a1a1a;max-width:80rem}
h1{font-size:1.5rem}table{border-collapse:collapse;width:100%;margin:1rem 0}
th,td{border:1px solid #bbb;padding:.4rem .6rem;text-align:left;vertical-align:top}
th{background:#eee}.passed{color:#0a6b2b;font-weight:bold}.failed{color:#b00020;font-weight:bold}
.notrun{color:#8a5a00;font-weight:bold}.summary{font-size:1.1rem;padding:.6rem;border:2px solid}
.ok{border-color:#0a6b2b}.bad{border-color:#b00020}
pre{background:#f6f6f6;border:1px solid #ddd;padding:.5rem;overflow:auto;max-height:24rem;
white-space:pre-wrap;word-break:break-all;font-size:.8rem}
section{border-top:2px solid #b00020;margin-top:1.5rem}dt{font-weight:bold}dd{margin:0 0 .5rem 1rem}
"""


def _class(status: Status) -> str:
    return {"passed": "passed", "failed": "failed", "not run": "notrun"}[status.value]


def _exchange_html(exchange: Exchange) -> str:
    status = f" (HTTP {exchange.http_status})" if exchange.http_status is not None else ""
    request = (
        f"<h4>Request: {html.escape(exchange.title)}</h4>"
        f"<pre>{html.escape(_text(exchange.request))}</pre>"
        if exchange.request
        else f"<h4>Received: {html.escape(exchange.title)}</h4>"
    )
    return f"{request}<h4>Response{status}</h4><pre>{html.escape(_text(exchange.response))}</pre>"


def html_report(report: Report) -> str:
    rows = []
    for result in report.results:
        anchor = html.escape(result.case_id)
        shown = result.status.value.upper()
        link = f'<a href="#{anchor}">{shown}</a>' if result.status is Status.FAILED else shown
        rows.append(
            f"<tr><td>{html.escape(result.case_id)}<br><small>{html.escape(result.title)}"
            f'</small></td><td class="{_class(result.status)}">{link}</td>'
            f"<td>{html.escape(result.rule)}</td>"
            f"<td>{html.escape(_detail(result)).replace(chr(10), '<br>')}</td></tr>"
        )
    failures = []
    for result in report.results:
        if result.status is not Status.FAILED:
            continue
        findings = "".join(
            f"<dt>{html.escape(f.message)}</dt><dd>Rule: {html.escape(f.rule)}</dd>"
            f"<dd>Fix: {html.escape(f.fix)}</dd>"
            for f in result.findings
        )
        exchanges = "".join(_exchange_html(e) for e in result.exchanges)
        failures.append(
            f'<section id="{html.escape(result.case_id)}"><h3>{html.escape(result.case_id)}: '
            f"{html.escape(result.title)}</h3><dl>{findings}</dl>{exchanges}</section>"
        )
    verdict = "ok" if report.passed else "bad"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Conformance report: {html.escape(report.target)}</title>
<style>{_CSS}</style></head><body>
<h1>Digikoppeling conformance report ({html.escape(report.mode)} mode)</h1>
<p>Target: <code>{html.escape(report.target)}</code>, started
{html.escape(report.started.isoformat(timespec="seconds"))}.</p>
<p class="summary {verdict}">{html.escape(report.summary())}</p>
<p>"Not run" means the case was not tested: it is not passed and proves nothing.</p>
<table><thead><tr><th>Case</th><th>Result</th><th>Rule</th><th>Findings / reason</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{"<h2>Failures</h2>" + "".join(failures) if failures else ""}
</body></html>
"""


def write_reports(report: Report, junit: Path | None, html_file: Path | None) -> None:
    if junit is not None:
        junit.write_bytes(junit_xml(report))
    if html_file is not None:
        html_file.write_text(html_report(report), encoding="utf-8")
