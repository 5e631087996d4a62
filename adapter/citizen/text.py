"""BerichtTekst as HTML: the organisation's text is untrusted, so everything is escaped.

Only two things become markup: line breaks (real ones, and the literal `\\r\\n` sequences
that many senders put in the XML) and http(s) URLs, which become links. Bidirectional
control characters are removed, so a right-to-left override cannot disguise a link or a
sentence.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_BIDI_CONTROLS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_LITERAL_BREAK = re.compile(r"\\r\\n|\\n|\\r")
_URL = re.compile(r"\bhttps?://[^\s<>\"'`]+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"


def clean(text: str) -> str:
    """Text without bidirectional controls, for any untrusted value shown on a page."""
    return _BIDI_CONTROLS.sub("", text)


def _link(url: str) -> Markup:
    return Markup(
        '<a href="{0}" rel="noopener noreferrer nofollow" class="utrecht-link">{0}</a>'
    ).format(url)


def _line(line: str) -> Markup:
    parts: list[Markup] = []
    position = 0
    for match in _URL.finditer(line):
        url = match.group(0)
        trimmed = url.rstrip(_TRAILING)
        parts.append(escape(line[position : match.start()]))
        parts.append(_link(trimmed))
        parts.append(escape(url[len(trimmed) :]))
        position = match.end()
    parts.append(escape(line[position:]))
    return Markup("").join(parts)


def bericht_tekst(text: str | None) -> Markup:
    """The letter's text as safe HTML: escaped, with <br> for line breaks and links for URLs."""
    if not text:
        return Markup("")
    normalised = _LITERAL_BREAK.sub("\n", clean(text)).replace("\r\n", "\n").replace("\r", "\n")
    return Markup("<br>\n").join(_line(line) for line in normalised.split("\n"))
