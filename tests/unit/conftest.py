"""The unit layer: modules tested directly, without a server, TLS or a subprocess.

`pytest tests/unit` runs this layer alone in seconds; every test in it is also marked `unit`,
so `pytest -m "not unit"` runs only the end-to-end tests. A test here that asks for a fixture
of the end-to-end layer is refused at collection: it would make the layer slow without
anyone noticing, so it belongs beside the other end-to-end tests instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent
# Fixtures of tests/conftest.py that start a server or build the session's whole PKI.
_END_TO_END_FIXTURES = frozenset({"server", "pki"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unit: a fast test of one module (tests/unit)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE not in item.path.parents:
            continue
        item.add_marker(pytest.mark.unit)
        used = _END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ()))
        if used:
            raise pytest.UsageError(
                f"{item.nodeid} is in the unit layer but uses {', '.join(sorted(used))}; "
                "move it to the end-to-end tests"
            )
