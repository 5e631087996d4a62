"""atheris fuzz targets for the parsers that read what peers send (issue 14 item 9).

One module per target, each with `fuzz_one(data)`: one input through the adapter's real
parsing code, as far as its endpoint would take it without a database. A refusal of the
adapter's own (`adapter.errors.AdapterError` and its family) is the expected answer to
hostile input; any other exception escapes and is a finding, as is an input that runs past
the time or memory limit `bench/fuzz.sh` gives libFuzzer.

`fuzz_one` needs no atheris, so `tests/unit/test_fuzz_targets.py` runs every target over its
seed corpus (`corpus/<target>/`, written by `make_corpus.py` from the test suite's samples).
`python -m bench.fuzz TARGET [libFuzzer options] [corpus dirs]` runs one under atheris; this
package's `__init__` imports no adapter code, so that run can instrument it as it is imported.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
# In the order bench/fuzz.sh runs them.
TARGETS = ("envelope", "mime", "cpa", "stuf", "pdf")
# Longest input libFuzzer makes per target: a little above the largest seed, so mutations
# can grow a seed without the run spending itself on megabytes no limit is near.
MAX_LEN = {"envelope": 8192, "mime": 8192, "cpa": 16384, "stuf": 8192, "pdf": 8192}
# Packages whose Python code atheris instruments for coverage; lxml and libxml2 are C and
# guide nothing, pypdf is Python and carries most of the PDF check.
INSTRUMENTED = {"pdf": ("adapter", "pypdf")}
DEFAULT_INSTRUMENTED = ("adapter",)


def seeds(target: str) -> list[Path]:
    """The seed files of one target, sorted by name."""
    return sorted(p for p in (CORPUS / target).iterdir() if p.is_file())
