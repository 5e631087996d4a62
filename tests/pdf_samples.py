"""PDFs for the attachment check: one good, one declaring PDF/A, and one of each unsafe kind.

Most are written by hand (`build_pdf`), so a test states exactly which dictionary carries the
active content; the encrypted and attachment ones come from pypdf's writer, as a sender's
tool would make them. Plain functions, importable by unit tests, end-to-end tests and benches.
"""

from __future__ import annotations

import io

from pypdf import PdfWriter

_CATALOG = b"<</Type/Catalog/Pages 2 0 R%s>>"
_PAGES = b"<</Type/Pages/Kids[3 0 R]/Count 1>>"
_PAGE = b"<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]/Resources<<>>%s>>"

XMP_PDFA_2A = b"""<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/">
   <pdfaid:part>2</pdfaid:part>
   <pdfaid:conformance>A</pdfaid:conformance>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>"""

XMP_PDFA_1B_ATTRIBUTES = b"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/" pdfaid:part="1" pdfaid:conformance="B"/>
</rdf:RDF></x:xmpmeta><?xpacket end="r"?>"""

XMP_WITHOUT_PDFA = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF
 xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about=""
 xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:format>application/pdf</dc:format>
</rdf:Description></rdf:RDF></x:xmpmeta>"""


def build_pdf(catalog: bytes = b"", page: bytes = b"", *extra: bytes) -> bytes:
    """A one-page PDF: `catalog` and `page` go inside those dictionaries, `extra` become
    objects 4, 5, ... (a stream body is given whole, `<<...>>stream...endstream`)."""
    bodies = [_CATALOG % catalog, _PAGES, _PAGE % page, *extra]
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(bodies, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(bodies) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<</Size %d/Root 1 0 R>>\nstartxref\n%d\n%%%%EOF\n" % (len(bodies) + 1, xref)
    return bytes(out)


def stream(data: bytes, dictionary: bytes = b"") -> bytes:
    return b"<<%s/Length %d>>stream\n" % (dictionary, len(data)) + data + b"\nendstream"


def good_pdf(marker: bytes = b"") -> bytes:
    """A blank page; `marker` (a PDF comment in its content stream) makes contents distinct."""
    return build_pdf(b"", b"/Contents 4 0 R", stream(b"% " + marker if marker else b""))


def pdfa_pdf(xmp: bytes = XMP_PDFA_2A) -> bytes:
    return build_pdf(b"/Metadata 4 0 R", b"", stream(xmp, b"/Type/Metadata/Subtype/XML"))


def javascript_open_action() -> bytes:
    return build_pdf(b"/OpenAction<</S/JavaScript/JS(app.alert\\('x'\\))>>")


def javascript_open_action_indirect() -> bytes:
    """The action and its script as objects of their own, the name written with #-escapes."""
    return build_pdf(b"/OpenAction 4 0 R", b"", b"<</S/Java#53cript/JS 5 0 R>>", stream(b"1"))


def javascript_name_tree() -> bytes:
    return build_pdf(b"/Names<</JavaScript<</Names[(a)<</S/JavaScript/JS(x)>>]>>>>")


def javascript_in_a_link() -> bytes:
    annotation = b"[<</Type/Annot/Subtype/Link/Rect[0 0 9 9]/A<</S/JavaScript/JS(x)>>>>]"
    return build_pdf(b"", b"/Annots" + annotation)


def launch_action() -> bytes:
    return build_pdf(b"/OpenAction<</S/Launch/F(cmd.exe)>>")


def embedded_file() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.add_attachment("factuur.exe", b"MZ\x90\x00")
    return _written(writer)


def xfa_form() -> bytes:
    return build_pdf(b"/AcroForm<</Fields[]/XFA 4 0 R>>", b"", stream(b"<xdp:xdp/>"))


def encrypted() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.encrypt(user_password="", owner_password="eigenaar", algorithm="AES-128")
    return _written(writer)


def truncated() -> bytes:
    whole = good_pdf(b"x" * 200)
    return whole[: len(whole) // 2]


def unreadable() -> bytes:
    """Header and trailer in place, but nothing a reader can find in between."""
    return b"%PDF-1.7\n" + b"garbage " * 40 + b"\nstartxref\n9\n%%EOF\n"


def _written(writer: PdfWriter) -> bytes:
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()
