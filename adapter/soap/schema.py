"""XSD validation of request payloads against the contract in `xsd/`."""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

from adapter.errors import SchemaViolation
from adapter.soap.xml import parse_trusted_file

_XS = "http://www.w3.org/2001/XMLSchema"


class SchemaSet:
    """The schemas of one contract directory, compiled once per thread.

    lxml's XMLSchema keeps its error log on the object, so threads of one worker each get
    their own compiled copy instead of sharing one.
    """

    def __init__(self, xsd_dir: Path) -> None:
        self.xsd_dir = xsd_dir
        self._local = threading.local()

    def _schema(self, name: str, as_strings: frozenset[str] = frozenset()) -> etree.XMLSchema:
        cache: dict[tuple[str, frozenset[str]], etree.XMLSchema] = self._local.__dict__.setdefault(
            "cache", {}
        )
        schema = cache.get((name, as_strings))
        if schema is None:
            schema = cache[name, as_strings] = _compiled(self.xsd_dir / name, as_strings)
        return schema

    def compiled(self, schema_name: str) -> etree.XMLSchema:
        """This thread's compiled schema, for validating a document while it is streamed."""
        return self._schema(schema_name)

    def validate(
        self,
        element: etree._Element,
        schema_name: str,
        checked_by_caller: frozenset[str] = frozenset(),
    ) -> None:
        """Raise `SchemaViolation` naming the first offending element and line.

        `checked_by_caller`: simple types (`{namespace}name`) whose values the caller checks
        itself, as the schema would; they are validated as any string, since libxml2's check
        of some types is both lax and costly (xs:base64Binary: characters outside the alphabet
        pass, and a batch's 27 MB of it cost most of its validation).
        """
        schema = self._schema(schema_name, checked_by_caller)
        if not schema.validate(element):
            error = schema.error_log.last_error
            raise SchemaViolation(f"regel {error.line}: {error.message}")


def _compiled(path: Path, as_strings: frozenset[str]) -> etree.XMLSchema:
    """The schema of `path` and what it imports, the simple types named in `as_strings`
    restricting xs:string with no facets instead of what the files say."""
    if not as_strings:
        return etree.XMLSchema(parse_trusted_file(str(path)))
    relaxing = _TypesAsStrings(as_strings)
    schema = etree.XMLSchema(parse_trusted_file(str(path), relaxing))
    missing = as_strings - relaxing.found
    if missing:  # a misspelt name would otherwise leave the check in place, silently
        raise ValueError(f"{path.name} declares no simple type {', '.join(sorted(missing))}")
    return schema


class _TypesAsStrings(etree.Resolver):  # type: ignore[misc]  # lxml-stubs types it as Any
    """Hands libxml2 each schema file (the first and every import) with the named simple
    types rewritten; resolvers of the parser that read the first file are also asked for
    the files it imports."""

    def __init__(self, names: frozenset[str]) -> None:
        self.names = names
        self.found: set[str] = set()

    def resolve(self, system_url: str, public_id: str, context: object) -> object:
        if not Path(system_url).is_file():
            return None  # libxml2's own loading, which has no network
        document = parse_trusted_file(system_url)
        self.found |= _as_strings(document.getroot(), self.names)
        return self.resolve_string(etree.tostring(document), context, base_url=system_url)


def _as_strings(schema: etree._Element, names: frozenset[str]) -> set[str]:
    """Rewrite the simple types of `schema` that `names` holds as restrictions of xs:string
    without facets; the names of those rewritten."""
    namespace = schema.get("targetNamespace")
    rewritten = set()
    for simple_type in schema.iterfind(f"{{{_XS}}}simpleType"):
        local = simple_type.get("name")
        name = f"{{{namespace}}}{local}" if namespace else local
        if name in names:
            prefix = next(p for p, uri in simple_type.nsmap.items() if uri == _XS)
            for child in list(simple_type):
                simple_type.remove(child)
            string = f"{prefix}:string" if prefix else "string"
            etree.SubElement(simple_type, f"{{{_XS}}}restriction", base=string)
            rewritten.add(name)
    return rewritten
