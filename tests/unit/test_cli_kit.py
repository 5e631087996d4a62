"""Small pieces of the CLI and the kit that need no server: durations, wire files, log lines."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from lxml import etree

from adapter.cli.cpa import iso_duration
from adapter.ebms.mime import build_package
from adapter.jobs.scheduler import RunLinesAtDebug
from adapter.kit.sender import BerichtSpec, build_batch, refresh_batch
from adapter.kit.wire import WireMessage, save


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=1), "P1D"),
        (timedelta(hours=3), "PT3H"),
        (timedelta(seconds=1), "PT1S"),
        (timedelta(seconds=60), "PT1M"),
        (timedelta(days=2, hours=1, minutes=30, seconds=5), "P2DT1H30M5S"),
        (timedelta(milliseconds=1500), "PT1.5S"),
        (timedelta(0), "PT0S"),
    ],
)
def test_a_cpa_duration_prints_as_iso_8601(value: timedelta, text: str) -> None:
    assert iso_duration(value) == text


def test_a_soap_message_is_saved_as_xml(tmp_path: Path) -> None:
    files = save(tmp_path, "response", WireMessage("text/xml; charset=utf-8", b"<a/>"))
    assert files == [tmp_path / "response.xml"]
    assert (tmp_path / "response.xml").read_bytes() == b"<a/>"


def test_a_mime_package_is_saved_byte_for_byte_with_its_soap_part_beside_it(
    tmp_path: Path,
) -> None:
    content_type, body = build_package(b"<soap/>", [("p@x", "text/xml", b"<payload/>")])
    files = save(tmp_path, "request", WireMessage(content_type, body))
    assert [f.name for f in files] == ["request.mime", "request.content-type", "request.xml"]
    assert (tmp_path / "request.mime").read_bytes() == body
    assert (tmp_path / "request.content-type").read_text() == content_type + "\n"
    assert (tmp_path / "request.xml").read_bytes() == b"<soap/>"


def test_an_empty_answer_saves_nothing(tmp_path: Path) -> None:
    assert save(tmp_path, "response", WireMessage("text/plain", b"")) == []


def test_a_refreshed_batch_has_new_ids_and_creation_time_and_the_same_letters() -> None:
    written = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    spec = BerichtSpec("999993653", "BESLUIT", "Test")
    original = build_batch("00000099000000002000", [spec], written)
    fresh = refresh_batch(original)

    def values(document: bytes, name: str) -> list[str]:
        return [e.text or "" for e in etree.fromstring(document).iter(f"{{*}}{name}")]

    for name in ("BatchID", "BerichtID", "AanmaakDatum"):
        assert set(values(fresh, name)).isdisjoint(values(original, name)), name
    assert len(set(values(fresh, "BatchID"))) == 1  # the batch's and the letter's agree
    for name in ("GebruikerID", "Onderwerp", "BerichtType"):
        assert values(fresh, name) == values(original, name)


def record(level: int) -> logging.LogRecord:
    return logging.LogRecord("apscheduler.executors.default", level, __file__, 1, "x", (), None)


def test_scheduler_run_lines_become_debug_and_are_dropped_unless_debug_is_on() -> None:
    root = logging.getLogger()
    before = root.level
    try:
        root.setLevel(logging.INFO)
        line = record(logging.INFO)
        assert RunLinesAtDebug().filter(line) is False
        assert line.levelname == "DEBUG"
        root.setLevel(logging.DEBUG)
        assert RunLinesAtDebug().filter(record(logging.INFO)) is True
        root.setLevel(logging.INFO)
        failure = record(logging.ERROR)
        assert RunLinesAtDebug().filter(failure) is True
        assert failure.levelname == "ERROR"
    finally:
        root.setLevel(before)
