"""XSD validation of request payloads against the contract in `xsd/`."""

from __future__ import annotations

import threading
from pathlib import Path

from lxml import etree

from adapter.errors import SchemaViolation
from adapter.soap.xml import parse_trusted_file


class SchemaSet:
    """The schemas of one contract directory, compiled once per thread.

    lxml's XMLSchema keeps its error log on the object, so threads of one worker each get
    their own compiled copy instead of sharing one.
    """

    def __init__(self, xsd_dir: Path) -> None:
        self.xsd_dir = xsd_dir
        self._local = threading.local()

    def _schema(self, name: str) -> etree.XMLSchema:
        cache: dict[str, etree.XMLSchema] = self._local.__dict__.setdefault("cache", {})
        schema = cache.get(name)
        if schema is None:
            schema = etree.XMLSchema(parse_trusted_file(str(self.xsd_dir / name)))
            cache[name] = schema
        return schema

    def compiled(self, schema_name: str) -> etree.XMLSchema:
        """This thread's compiled schema, for validating a document while it is streamed."""
        return self._schema(schema_name)

    def validate(self, element: etree._Element, schema_name: str) -> None:
        """Raise `SchemaViolation` naming the first offending element and line."""
        schema = self._schema(schema_name)
        if not schema.validate(element):
            error = schema.error_log.last_error
            raise SchemaViolation(f"regel {error.line}: {error.message}")
