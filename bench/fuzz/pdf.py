"""Fuzz target: an attachment through the PDF check (`adapter.berichtenbox.pdf.check_pdf`).

The check promises a verdict for any bytes a sender puts in a file: it never raises, so here
every exception is a finding, and so is a verdict that is neither a refusal with a reason nor
an acceptance with a well-formed PDF/A declaration (one digit, then A, B, U, E, F or nothing).
"""

from __future__ import annotations

import re

from adapter.berichtenbox.pdf import check_pdf

_PDFA = re.compile(r"[0-9][ABUEF]?")


def fuzz_one(data: bytes) -> str:
    """One input; "accepted" (with the PDF/A part declared, if any), or the refusal's reason."""
    verdict = check_pdf(data)
    if verdict.problem is not None:
        if not verdict.problem or verdict.pdfa is not None:
            raise AssertionError(f"a refusal without a reason or with a PDF/A part: {verdict}")
    elif verdict.pdfa is not None and not _PDFA.fullmatch(verdict.pdfa):
        raise AssertionError(f"PDF/A declaration {verdict.pdfa!r} is not a part and level")
    if verdict.problem is not None:
        return verdict.problem
    return f"accepted PDF/A-{verdict.pdfa}" if verdict.pdfa else "accepted"
