"""The attachment check on its own: which PDFs a citizen may be sent, and the reason for each
one refused (it follows "persoonlijke bijlage N" in the Afleverbevestiging)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapter.berichtenbox.pdf import PdfVerdict, check_pdf
from tests import pdf_samples as pdfs
from tests.berichtverwerk_samples import minimal_pdf

# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [330, 10_000, 1_048_576])
def test_a_plain_pdf_of_any_size_is_safe_and_declares_no_pdfa(size: int) -> None:
    assert check_pdf(minimal_pdf(size)) == PdfVerdict(None, None)


def test_a_pdf_whose_xmp_declares_pdfa_records_part_and_conformance() -> None:
    assert check_pdf(pdfs.pdfa_pdf()) == PdfVerdict(None, "2A")


def test_the_pdfa_declaration_is_read_from_attributes_as_well_as_elements() -> None:
    assert check_pdf(pdfs.pdfa_pdf(pdfs.XMP_PDFA_1B_ATTRIBUTES)) == PdfVerdict(None, "1B")


def test_xmp_metadata_without_pdfaid_declares_nothing() -> None:
    assert check_pdf(pdfs.pdfa_pdf(pdfs.XMP_WITHOUT_PDFA)) == PdfVerdict(None, None)


def test_xmp_metadata_that_is_not_safe_xml_declares_nothing_and_is_never_expanded() -> None:
    bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;&a;</x>'
    assert check_pdf(pdfs.pdfa_pdf(bomb)) == PdfVerdict(None, None)


# --- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "problem"),
    [
        (pdfs.javascript_open_action, "bevat JavaScript"),
        (pdfs.javascript_open_action_indirect, "bevat JavaScript"),
        (pdfs.javascript_name_tree, "bevat JavaScript"),
        (pdfs.javascript_in_a_link, "bevat JavaScript"),
        (pdfs.launch_action, "bevat een Launch-actie (starten van een programma)"),
        (pdfs.embedded_file, "bevat een ingesloten bestand"),
        (pdfs.xfa_form, "bevat een XFA-formulier"),
        (pdfs.encrypted, "is versleuteld"),
        (pdfs.truncated, "is geen volledige PDF (startxref en %%EOF aan het eind ontbreken)"),
        (pdfs.unreadable, "kan niet als PDF worden gelezen"),
        (lambda: b"PK\x03\x04 a zip renamed to .pdf" * 20, "is geen PDF"),
        (lambda: b"", "is geen PDF"),
    ],
    ids=[
        "javascript-openaction",
        "javascript-openaction-indirect-escaped-name",
        "javascript-name-tree",
        "javascript-link-annotation",
        "launch",
        "embedded-file",
        "xfa",
        "encrypted",
        "truncated",
        "unreadable",
        "zip",
        "empty",
    ],
)
def test_an_unsafe_or_unreadable_file_is_refused_with_its_reason(
    build: Callable[[], bytes], problem: str
) -> None:
    assert check_pdf(build()) == PdfVerdict(problem, None)


def test_active_content_is_found_also_when_the_file_declares_pdfa() -> None:
    declared = pdfs.build_pdf(
        b"/Metadata 4 0 R/OpenAction<</S/JavaScript/JS(x)>>",
        b"",
        pdfs.stream(pdfs.XMP_PDFA_2A, b"/Type/Metadata/Subtype/XML"),
    )
    assert check_pdf(declared) == PdfVerdict("bevat JavaScript", None)


def test_a_reference_cycle_in_the_object_graph_ends_the_walk() -> None:
    cyclic = pdfs.build_pdf(b"/Loop 4 0 R", b"", b"<</Next 5 0 R>>", b"<</Next 4 0 R>>")
    assert check_pdf(cyclic) == PdfVerdict(None, None)
